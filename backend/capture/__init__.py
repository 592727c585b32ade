"""Animation from a video: decode, track the face, fit each frame with the identity fixed, smooth
in time, reduce to keys (protocol.capture)."""

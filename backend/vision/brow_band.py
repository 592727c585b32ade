"""The brows' height read off the image, where the landmark networks place them from the rest of
the face.

Measured on renders of the default model (docs/au_accuracy.md): with AU1 and AU2 at 1 the brow
rises 0.14-0.22 inter-ocular distances (IOD) over the eyes in the image, while MediaPipe's brow
points move -0.09 to +0.14 IOD (dlib's about as little), whatever the brow's thickness or
darkness. So the brow is also read here as a dark band: per side, the luminance profile of a
strip through the landmarks' brow, across the eye line (the frame of :func:`eye_frame`, so roll
drops out), smoothed; its local minima of prominence >= :data:`MIN_PROMINENCE` levels and
contrast >= :data:`MIN_CONTRAST` within a brow's plausible travel from the landmarks' height
(:data:`SEARCH`) are the candidate bands; the two sides' bands are chosen together, the pair
closest to each other and then to the landmarks' brows, which passes over a fringe of hair or
the shadow of the eye socket on one side.

The result is a height over each eye's corner line in IOD, as :func:`au_readout.landmark_features`
measures the landmarks' brow, and the band's contrast; the AU readout takes the band's offset
from the landmarks' brow and that contrast as inputs (readouts trained on them), so it learns how
far to trust the image against the landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

# MediaPipe mesh indices per side (subject's right, then left): the eye's outer and inner
# corners and the brow points whose mean the readout's landmark features call the brow.
EYE_CORNERS = ((33, 133), (263, 362))
BROW_POINTS = ((105, 66, 70), (334, 296, 300))

# The search window around the landmarks' brow height, in IOD. A raise the landmarks miss shows
# as the band up to +0.31 over them (surprise on renders of another identity, where the
# landmarks' brows even sank), a frown as -0.02 below. Hair can be inside it: the bundled photo's
# fringe lies +0.23 over one brow (+0.36 over the other), the photo-textured renders' +0.28 to
# +0.38; the choice of the two sides together passes over it while both brows show.
SEARCH = (-0.12, 0.35)
# Bands of less contrast (prominence over the strip's mean luminance) are shading ripples, not a
# brow: a ripple of 0.02-0.03 under a raised painted brow (contrast 0.5) lay as near the
# landmarks as the brow; the bundled photo's light brows have 0.25, the photo-textured renders'
# 0.11-0.29. (A share of the side's strongest band instead dropped a brow under a dark fringe.)
MIN_CONTRAST = 0.06
STRIP_HALF_WIDTH = 0.10  # IOD across the strip: the brow's middle third
SMOOTH = 0.02  # IOD, the profile's Gaussian sigma (a brow band is ~0.05-0.1 IOD high)
MIN_PROMINENCE = 3.0  # luminance levels of 255 (the JPEG noise of a face crop is ~1)
MIN_IOD_PX = 20.0  # below this the band is a pixel or two high: not read


def eye_frame(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin, axes, iod) of the eye frame of MediaPipe's points (x, y pixels): origin midway
    between the eye centres (the mean of each eye's corners), x along the line joining them, y
    down, in inter-ocular distances. ``(p - origin) @ axes / iod`` maps pixels into it."""
    p = np.asarray(dense, np.float64)[:, :2]
    centres = [p[list(c)].mean(0) for c in EYE_CORNERS]
    across = centres[1] - centres[0]
    iod = max(float(np.hypot(*across)), 1e-9)
    ex = across / iod
    ey = np.array([-ex[1], ex[0]])
    return (centres[0] + centres[1]) / 2.0, np.stack([ex, ey], 1), iod


def landmark_brows(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, list[tuple[float, float, float]]]:
    """(origin, axes, iod, per side (x, eye_y, height)) of MediaPipe's points: the eye frame
    (:func:`eye_frame`) and, per side, the x of the landmarks' brow (the mean of BROW_POINTS), the
    eye's corner line's y there, and the brow's height over it, in IOD (positive up)."""
    p = np.asarray(dense, np.float64)[:, :2]
    origin, axes, iod = eye_frame(p)
    q = (p - origin) @ axes / iod
    sides = []
    for corners, brow in zip(EYE_CORNERS, BROW_POINTS):
        eye_y = float(q[list(corners), 1].mean())
        sides.append((float(q[list(brow), 0].mean()), eye_y, eye_y - float(q[list(brow), 1].mean())))
    return origin, axes, iod, sides


def _luminance(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        return img.astype(np.float32)
    img = img[..., :3]
    if img.dtype != np.uint8:  # float images in 0..1
        img = np.clip(np.asarray(img, np.float32) * 255.0, 0, 255)
    return cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2GRAY)


def _profile(image: np.ndarray, origin, axes, iod, x: float, heights: np.ndarray) -> np.ndarray:
    """Mean luminance across the strip at eye-frame x, at each height over the eye line (IOD,
    positive up), bilinear (cv2.remap; outside the image: edge values). Only the pixels around the
    strip are converted to luminance: a 100 MP photo's whole frame in float32 would be 1.2 GB."""
    across = np.linspace(-STRIP_HALF_WIDTH, STRIP_HALF_WIDTH, max(3, int(2 * STRIP_HALF_WIDTH * iod) | 1))
    q = np.stack(np.broadcast_arrays(x + across[None, :], -heights[:, None]), -1)  # (n, m, 2) eye frame
    px = (q * iod) @ axes.T + origin - 0.5  # back to pixels (axes is orthonormal), centres at .5
    h, w = image.shape[:2]
    # the strip's bounding box with the bilinear neighbours, clipped to the image: replicating the
    # crop's edge is then replicating the image's
    x0 = int(np.clip(np.floor(px[..., 0].min()) - 1, 0, w - 1))
    y0 = int(np.clip(np.floor(px[..., 1].min()) - 1, 0, h - 1))
    x1 = int(np.clip(np.ceil(px[..., 0].max()) + 2, x0 + 1, w))
    y1 = int(np.clip(np.ceil(px[..., 1].max()) + 2, y0 + 1, h))
    lum = _luminance(image[y0:y1, x0:x1])
    vals = cv2.remap(lum, (px[..., 0] - x0).astype(np.float32), (px[..., 1] - y0).astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return vals.mean(1)


def measure(image: np.ndarray, dense: np.ndarray) -> list[float] | None:
    """[right height, left height, right contrast, left contrast] of the brow bands, heights in IOD
    over each eye's corner line at the brow (the frame of :func:`eye_frame`), contrasts as the
    band's prominence over the strip's mean luminance; a side without a band in its window gets
    the landmarks' height and contrast 0. None when the face is too small to read
    (:data:`MIN_IOD_PX`)."""
    origin, axes, iod, brows = landmark_brows(dense)
    if iod < MIN_IOD_PX:
        return None
    image = np.asarray(image)
    step = 1.0 / iod  # about a pixel per sample
    sides = []
    for x, eye_y, lm_h in brows:
        heights = np.arange(lm_h + SEARCH[0] - 3 * SMOOTH, lm_h + SEARCH[1] + 3 * SMOOTH, step)
        prof = _profile(image, origin, axes, iod, x, heights - eye_y)
        prof = gaussian_filter1d(prof, SMOOTH / step)
        pk, props = find_peaks(-prof, prominence=MIN_PROMINENCE)
        h = heights[pk]
        c = props["prominences"] / max(float(prof.mean()), 1.0)
        keep = (h >= lm_h + SEARCH[0]) & (h <= lm_h + SEARCH[1]) & (c >= MIN_CONTRAST)
        sides.append((lm_h, h[keep], c[keep]))
    (lr, hr, cr), (ll, hl, cl) = sides
    if len(hr) and len(hl):
        i, j = np.unravel_index(np.argmin(np.abs(hr[:, None] - hl[None, :])
                                          + 0.5 * (np.abs(hr - lr)[:, None] + np.abs(hl - ll)[None, :])),
                                (len(hr), len(hl)))
        out = [hr[i], hl[j], cr[i], cl[j]]
    else:
        pick = []
        for lm_h, h, c in sides:  # one side (or none) has a band: each its nearest to the landmarks
            k = int(np.argmin(np.abs(h - lm_h))) if len(h) else -1
            pick.append((h[k], c[k]) if k >= 0 else (lm_h, 0.0))
        out = [pick[0][0], pick[1][0], pick[0][1], pick[1][1]]
    return [round(float(v), 4) for v in out]  # 1e-4 IOD: well under a pixel, as the job stores it

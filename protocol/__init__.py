"""What the Blender side and the backend process share: one definition of the wire and the
job folder, imported by both interpreters (the backend's Python 3.11 with torch, Blender's 3.13).

    rpc      JSON-RPC 2.0 framing, error codes (protocol, FaceDet3D, client side), the server module
    methods  method names and their typed parameters, validated the same way on both sides
    job      the job folder's data model (face.json) and its file names
    scene    scene.json: everything the scene builder applies, in Blender's frames and units
    details  detail and wrinkle-map side files, their file names, tags and the key rounding rule
    health   the health answer, including which detail models the backend offers

Standard library and numpy only (Blender ships numpy); no bpy, no backend imports. Inside this
package imports are relative, so it works as the top-level ``protocol`` (the backend) and as a
subpackage of the installed extension (Blender).
"""

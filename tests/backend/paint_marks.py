"""Marks that are not relief, painted onto a real photo where a face has them, to measure what the
photo-detail cleaning drops and what it keeps (tests and ``scripts/photo_cleaning.py``).

Sizes are in millimetres through the photo's inter-ocular distance (63 mm between the eye
centres, the adult mean of Dodgson 2004, "Variation and extrema of human interpupillary
distance"), colours are multiplicative (albedo) changes of the linear photo:

- freckles: 40 ephelides 1-2 mm across on the cheeks and the nose (Praetorius et al. 2014
  describe them as 1-2 mm, sometimes up to 5 mm), a melanin tint that darkens blue and green
  more than red;
- moles: 3 melanocytic naevi 3-5 mm across (the common acquired naevus is under 6 mm),
  darker and browner;
- glasses: a full-rim frame, lenses 50 x 38 mm (a common 50-20 frame size), rim 3 mm wide
  and nearly black, the bridge and the temples to the face's edge;
- hair strands: 6 thin curved strands (0.5-0.8 mm wide, a clump of a few hairs) from
  30 mm above the brows (a fringe's edge or the hairline) down across the forehead, in the colour of the photo's own hair just above it;
- highlights: 5 specular spots (white, sigma 1.5-2.5 mm) on the forehead, the nose and the cheeks.

Each kind also comes back as a (H, W) coverage mask of the photo, so tests can look at the
texels it lands on.
"""

from __future__ import annotations

import numpy as np

IOD_MM = 63.0
KINDS = ("freckles", "moles", "glasses", "strands", "highlights")
MELANIN_FRECKLE = np.array([0.78, 0.66, 0.58])  # multiplicative, linear R, G, B
MELANIN_MOLE = np.array([0.50, 0.36, 0.30])
RIM_RGB = np.array([0.03, 0.025, 0.025])


def _srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x):
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def _disc(shape, centre, radius_px, soft_px=0.7):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    d = np.hypot(xx - centre[0], yy - centre[1])
    return np.clip((radius_px - d) / soft_px + 0.5, 0.0, 1.0)


def _polyline(shape, pts, half_width_px, soft_px=0.7):
    """Coverage of a thick polyline (anti-aliased), by distance to its segments."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    p = np.stack([xx, yy], -1).astype(np.float64)
    best = np.full(shape, np.inf)
    for a, b in zip(pts[:-1], pts[1:]):
        ab = b - a
        t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-9), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(p - (a + t[..., None] * ab), axis=-1))
    return np.clip((half_width_px - best) / soft_px + 0.5, 0.0, 1.0)


def _ellipse(c, ax, ay, n=96):
    t = np.linspace(0, 2 * np.pi, n + 1)
    return np.stack([c[0] + ax * np.cos(t), c[1] + ay * np.sin(t)], -1)


def paint(photo: np.ndarray, landmarks: np.ndarray, kinds=KINDS, seed: int = 0):
    """``photo`` (H,W,3) uint8 sRGB, ``landmarks`` (68,2) pixels. Returns the painted photo
    (uint8) and {kind: (H,W) float coverage 0..1}."""
    rng = np.random.default_rng(seed)
    lm = np.asarray(landmarks, np.float64)
    h, w = photo.shape[:2]
    eye_r, eye_l = lm[36:42].mean(0), lm[42:48].mean(0)
    px = np.linalg.norm(eye_l - eye_r) / IOD_MM  # pixels per mm
    across = (eye_l - eye_r) / np.linalg.norm(eye_l - eye_r)
    down = np.array([-across[1], across[0]])
    img = _srgb_to_linear(photo.astype(np.float64) / 255.0)
    cover = {}

    def cheek_points(n):
        """Random points on the cheeks and the nose bridge (face-relative frame)."""
        out = []
        while len(out) < n:
            side = rng.choice([-1.0, 1.0, 0.0], p=[0.4, 0.4, 0.2])
            if side == 0.0:
                p = (eye_r + eye_l) / 2 + down * rng.uniform(12, 32) * px + across * rng.uniform(-5, 5) * px
            else:
                eye = eye_l if side > 0 else eye_r
                p = eye + down * rng.uniform(14, 32) * px + across * side * rng.uniform(-8, 14) * px
            out.append(p)
        return out

    if "freckles" in kinds:
        m = np.zeros((h, w))
        for p in cheek_points(40):
            m = np.maximum(m, _disc((h, w), p, rng.uniform(0.5, 1.0) * px) * rng.uniform(0.7, 1.0))
        img = img * (1 - m[..., None] + m[..., None] * MELANIN_FRECKLE)
        cover["freckles"] = m
    if "moles" in kinds:
        m = np.zeros((h, w))
        for p in cheek_points(3):
            m = np.maximum(m, _disc((h, w), p, rng.uniform(1.5, 2.5) * px))
        img = img * (1 - m[..., None] + m[..., None] * MELANIN_MOLE)
        cover["moles"] = m
    if "highlights" in kinds:
        m = np.zeros((h, w))
        brow = (lm[19] + lm[24]) / 2
        spots = [brow - down * 14 * px, lm[30], lm[30] - down * 9 * px,
                 eye_r + down * 22 * px - across * 4 * px, eye_l + down * 22 * px + across * 4 * px]
        yy, xx = np.mgrid[0:h, 0:w]
        for p in spots:
            s = rng.uniform(1.5, 2.5) * px
            m = np.maximum(m, np.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / (2 * s * s)))
        img = img + 0.35 * m[..., None]
        cover["highlights"] = (m > 0.1).astype(np.float64)
    if "strands" in kinds:
        brow = (lm[19] + lm[24]) / 2
        hairline = brow - down * 30 * px  # inside a fringe or at the hairline: strands fall from here
        hr = np.clip((brow - down * 40 * px).astype(int), 0, [w - 1, h - 1])
        hair = img[max(hr[1] - 6, 0):hr[1] + 1, max(hr[0] - 6, 0):hr[0] + 7].reshape(-1, 3).mean(0)
        m = np.zeros((h, w))
        for _ in range(6):
            x0 = rng.uniform(-30, 30)
            bend = rng.uniform(-6, 6)
            t = np.linspace(0, 1, 12)
            pts = np.array([hairline + across * (x0 + bend * np.sin(np.pi * s) + 4 * s) * px
                            + down * (s * rng.uniform(18, 26)) * px for s in t])
            # at least ~one pixel wide: a clump thinner than a pixel only tints the pixels it crosses
            m = np.maximum(m, _polyline((h, w), pts, max(rng.uniform(0.25, 0.4) * px, 0.6)))
        img = img * (1 - m[..., None]) + m[..., None] * hair
        cover["strands"] = m
    if "glasses" in kinds:
        ax, ay, rim = 25.0 * px, 19.0 * px, 1.5 * px
        m = np.zeros((h, w))
        centres = []
        for eye, side in ((eye_r, -1.0), (eye_l, 1.0)):
            c = eye + across * side * 2.0 * px + down * 2.0 * px
            centres.append(c)
            ring = _ellipse(np.zeros(2), ax, ay)
            pts = c + ring[:, :1] * across + ring[:, 1:] * down
            m = np.maximum(m, _polyline((h, w), pts, rim))
        bridge = np.array([centres[0] + across * ax, (centres[0] + centres[1]) / 2 - down * 6 * px,
                           centres[1] - across * ax])
        m = np.maximum(m, _polyline((h, w), bridge, rim * 0.8))
        for c, side, jaw in ((centres[0], -1.0, lm[0]), (centres[1], 1.0, lm[16])):
            start = c + across * side * ax - down * 6 * px
            reach = abs((jaw - start) @ across)
            m = np.maximum(m, _polyline((h, w), np.array([start, start + across * side * reach]), rim * 0.9))
        img = img * (1 - m[..., None]) + m[..., None] * RIM_RGB
        cover["glasses"] = m
    out = np.round(_linear_to_srgb(img) * 255.0).astype(np.uint8)
    return out, cover


def marks_in_uv(model, rec, cover: dict, size: int) -> dict:
    """Each kind's photo coverage carried to the face tile (size²) the way the photo's colour is."""
    from backend.reconstruct import texture

    verts = model.shape(np.asarray(rec.fit.identity), np.asarray(rec.fit.expression))
    face = tuple(model.regions["face"][1])
    out, kinds = {}, list(cover)
    for i in range(0, len(kinds), 3):
        img = np.zeros(cover[kinds[0]].shape + (3,), np.uint8)
        for j, k in enumerate(kinds[i:i + 3]):
            img[..., j] = np.round(255 * cover[k]).astype(np.uint8)
        t = texture.project_texture(model, verts, rec.fit.camera, img, face, 0, size, mirror=False)
        for j, k in enumerate(kinds[i:i + 3]):
            out[k] = t.rgb[..., j].astype(np.float32) / 255.0
    return out

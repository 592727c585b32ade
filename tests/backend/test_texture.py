"""Projecting the photo into UV space: texel <-> pixel coordinates, occlusion, fill."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from backend.core.errors import CancelledError
from backend.core.progress import Job
from backend.geometry import raster
from backend.models.loader import load_model
from backend.reconstruct import texture
from protocol.job import Camera


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def verts(model):
    return model.shape()


def frontal_camera(size=256, focal=600.0, dist=600.0, height=None) -> Camera:
    # Model: +y up, +z out of the face. OpenCV camera: y down, z forward (into the scene).
    # x_cam = R x + t with R = diag(1, -1, -1): model up -> image up, the face (+z) looks
    # into the camera, the subject's left (+x) appears on the image's right. Centre: (0,0,dist).
    return Camera(size, height or size, focal, np.diag([1.0, -1.0, -1.0]).tolist(), [0.0, 0.0, dist])


def look_at(center, w=512, h=512, focal=1000.0) -> Camera:
    c = np.asarray(center, float)
    fwd = -c / np.linalg.norm(c)  # looking at the model origin
    down = np.array([0.0, -1.0, 0.0])
    down -= down @ fwd * fwd
    down /= np.linalg.norm(down)
    r = np.stack([np.cross(down, fwd), down, fwd])
    return Camera(w, h, focal, r.tolist(), (-r @ c).tolist())


def yaw_camera(deg: float, dist=600.0) -> Camera:
    """A camera at the subject's left (+x) side, ``deg`` degrees off frontal."""
    a = np.radians(deg)
    return look_at(dist * np.array([np.sin(a), 0.0, np.cos(a)]))


def texel_points(model, verts, polygon_range, tile, size, rows, cols):
    """Surface points of texel centres, found by brute force over the UV triangles (independent
    of backend.raster): texel (r, c) is at u = tile + (c + .5)/size, v = 1 - (r + .5)/size.
    Returns (points (N,3), geometric normals (N,3), found (N,) bool)."""
    tv, tu = model.triangles(polygon_range)
    uv = model.uvs[tu].astype(np.float64)
    a, e1, e2 = uv[:, 0], uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    good = np.abs(det) > 1e-14
    q = np.stack([tile + (cols + 0.5) / size, 1.0 - (rows + 0.5) / size], 1)
    pts = np.zeros((len(q), 3))
    nrm = np.zeros((len(q), 3))
    found = np.zeros(len(q), bool)
    v = np.asarray(verts, np.float64)
    for s in range(0, len(q), 128):  # (queries x triangles) in chunks
        dx = q[s:s + 128, 0:1] - a[None, :, 0]
        dy = q[s:s + 128, 1:2] - a[None, :, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            l1 = (dx * e2[:, 1] - dy * e2[:, 0]) / det
            l2 = (e1[:, 0] * dy - e1[:, 1] * dx) / det
        inside = good & (l1 >= -1e-9) & (l2 >= -1e-9) & (l1 + l2 <= 1 + 1e-9)
        has = inside.any(1)
        k = inside.argmax(1)
        i = np.arange(len(k))
        p0, p1, p2 = v[tv[k, 0]], v[tv[k, 1]], v[tv[k, 2]]
        pts[s:s + 128] = p0 + l1[i, k, None] * (p1 - p0) + l2[i, k, None] * (p2 - p0)
        n = np.cross(p1 - p0, p2 - p0)
        nrm[s:s + 128] = n / np.linalg.norm(n, axis=1, keepdims=True)
        found[s:s + 128] = has
    return pts, nrm, found


def coded_image(size=256, height=None):
    """Red = pixel column, green = pixel row: a bilinear sample decodes to where it was taken."""
    yy, xx = np.mgrid[:height or size, :size]
    return np.dstack([xx, yy, np.full_like(xx, 128)]).astype(np.uint8)


def test_raster_matches_brute_force_and_gutter_extrapolates(model):
    size = 128
    tv, tu = model.triangles((0, 1500))  # a part of the face: islands, holes and borders
    tris = raster.uv_to_texel(model.uvs[tu], size, 0)
    ras = raster.rasterize(tris, size)
    # brute force: every texel centre against every triangle
    yy, xx = np.mgrid[:size, :size].reshape(2, -1).astype(np.float64)
    a, e1, e2 = tris[:, 0], tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    dx, dy = xx[:, None] - a[:, 0], yy[:, None] - a[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        l1 = (dx * e2[:, 1] - dy * e2[:, 0]) / det
        l2 = (e1[:, 0] * dy - e1[:, 1] * dx) / det
    inside = (np.abs(det) > 1e-12) & (l1 >= -1e-7) & (l2 >= -1e-7) & (l1 + l2 <= 1 + 1e-7)
    assert np.array_equal(inside.any(1), ras.tri.ravel() >= 0)
    # the mask-only raster (span ends summed along the rows) covers exactly the same texels
    assert np.array_equal(raster.coverage(tris, size), ras.tri >= 0)
    t = ras.tri.ravel()
    hit = np.flatnonzero(t >= 0)
    assert inside[hit, t[hit]].all(), "each texel's triangle contains it"

    def centre_from_bary(r):
        # barycentrics (first two weights belong to corners 0 and 1) map back to the texel centre
        ok = r.tri >= 0
        tt, bb = r.tri[ok], r.bary[ok].astype(np.float64)
        p = tris[tt]
        back = bb[:, :1] * p[:, 0] + bb[:, 1:] * p[:, 1] + (1 - bb.sum(1, keepdims=True)) * p[:, 2]
        return back, np.stack(np.nonzero(ok)[::-1], 1)

    back, want = centre_from_bary(ras)
    assert np.abs(back - want).max() < 1e-3
    grown = raster.dilate_gutter(ras, tris, 2)
    assert grown.gutter.sum() > 0 and not (grown.gutter & (ras.tri >= 0)).any()
    back, want = centre_from_bary(grown)
    assert np.abs(back - want).max() < 1e-3, "gutter texels carry barycentrics extrapolated to their centre"
    ring = ndimage.binary_dilation(ras.tri >= 0, np.ones((3, 3), bool), iterations=2)
    assert np.array_equal(ring, grown.tri >= 0), "two full rings"


@pytest.mark.parametrize("region,tile", [("face", 0), ("head_neck", 1)])
def test_texels_sample_the_pixel_their_point_projects_to(model, verts, region, tile):
    # a landscape photo for the face (catches x/y or width/height mix-ups), the whole head
    # in frame for tile 1
    height = 200 if tile == 0 else 256
    cam = frontal_camera(focal=600.0 if tile == 0 else 250.0, height=height)
    lm = verts[model.landmark_vertices]
    nose, brow, chin = cam.project(lm[[30, 27, 8]])
    assert abs(nose[0] - 128) < 2 and brow[1] < nose[1] < chin[1], "hand-made camera: face upright, centred"
    assert cam.project(lm[45:46])[0, 0] > cam.project(lm[36:37])[0, 0], "subject's left is image right"

    size = 256 if tile == 0 else 128
    res = texture.project_texture(model, verts, cam, coded_image(height=height), model.regions[region][1], tile,
                                  size)
    assert res.rgb.shape == (size, size, 3) and res.rgb.dtype == np.uint8
    assert res.mask.shape == (size, size) and res.mask.dtype == np.float32
    rows, cols = np.nonzero(res.mask >= 1.0)
    assert len(rows) > 0.2 * size * size / (1 if tile == 0 else 10)
    pick = np.random.default_rng(0).choice(len(rows), 300, replace=False)
    rows, cols = rows[pick], cols[pick]
    pts, _, found = texel_points(model, verts, model.regions[region][1], tile, size, rows, cols)
    assert found.mean() > 0.75  # the rest are gutter texels just outside an island
    expect = cam.project(pts[found])
    got = res.rgb[rows[found], cols[found], :2].astype(np.float64) + 0.5  # value i is pixel centre i + .5
    err = got - expect
    # uint8 rounding allows 0.5 px; a half-texel or half-pixel slip shows in the mean,
    # a row or u flip as errors of tens of pixels
    assert np.abs(err).max() < 0.75, np.abs(err).max()
    assert np.abs(err.mean(0)).max() < 0.2, err.mean(0)


def test_profile_view_sees_near_cheek_not_far_cheek(model, verts):
    size = 256
    face = model.regions["face"][1]
    img = np.full((512, 512, 3), 200, np.uint8)
    cam = yaw_camera(75)
    res = texture.project_texture(model, verts, cam, img, face, 0, size)
    rows, cols = np.mgrid[:size:4, :size:4].reshape(2, -1)
    pts, nrm, found = texel_points(model, verts, face, 0, size, rows, cols)
    x, y, z = pts.T
    cheek = found & (np.abs(x) > 40) & (np.abs(x) < 60) & (y > -40) & (y < 0) & (z > 40)
    near, far = cheek & (x > 0), cheek & (x < 0)
    assert near.sum() > 20 and far.sum() > 20
    assert np.all(res.mask[rows[far], cols[far]] == 0), "the far cheek is hidden"
    assert np.all(res.mask[rows[near], cols[near]] > 0.5), "the near cheek is seen"
    # the weight follows the viewing angle: grazing texels count little, square-on ones fully
    cosang = np.einsum("ij,ij->i", nrm, cam.center - pts) / np.linalg.norm(cam.center - pts, axis=1)
    w = res.mask[rows, cols]
    grazing, square = found & (cosang > 0) & (cosang < 0.1), found & (cosang > 0.7)
    assert grazing.sum() > 20 and square.sum() > 20
    assert np.all(w[grazing] < 0.3) and np.median(w[square]) == 1.0


def test_nose_hides_part_of_the_far_cheek(model, verts):
    size = 256
    face = model.regions["face"][1]
    cam = yaw_camera(50)
    img = np.full((512, 512, 3), 200, np.uint8)
    with_occ = texture.project_texture(model, verts, cam, img, face, 0, size)
    no_occ = texture.project_texture(model, verts, cam, img, face, 0, size, occlusion=False)
    # texels that face the camera (seen without the ray test) but the mesh hides
    rows, cols = np.nonzero((no_occ.mask > 0.3) & (with_occ.mask == 0))
    assert len(rows) > 0.005 * size * size
    pts, nrm, found = texel_points(model, verts, face, 0, size, rows, cols)
    pts, nrm = pts[found], nrm[found]
    view = cam.center - pts
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    assert np.median(np.einsum("ij,ij->i", nrm, view)) > 0.2, "they do face the camera"
    beside_nose = (pts[:, 0] < -5) & (pts[:, 0] > -40) & (pts[:, 2] > 70) & (np.abs(pts[:, 1]) < 40)
    assert beside_nose.sum() > 0.3 * len(pts), "most lie on the far side of the nose"
    # what the camera sees directly is unchanged by the ray test
    both = (with_occ.mask > 0) & (no_occ.mask > 0)
    assert np.array_equal(with_occ.rgb[both], no_occ.rgb[both])
    assert with_occ.coverage["occluded_fraction"] > no_occ.coverage["occluded_fraction"] == 0


def test_subsampled_ray_casting_matches_one_ray_per_texel(model, verts, monkeypatch):
    face = model.regions["face"][1]
    img = np.full((512, 512, 3), 200, np.uint8)
    monkeypatch.setattr(texture, "RAY_SUBSAMPLE_MIN_SIZE", 10 ** 9)
    every = texture.project_texture(model, verts, yaw_camera(50), img, face, 0, 512)
    monkeypatch.setattr(texture, "RAY_SUBSAMPLE_MIN_SIZE", 0)
    lattice = texture.project_texture(model, verts, yaw_camera(50), img, face, 0, 512)
    assert every.coverage["occluded_fraction"] > 0.01
    assert ((every.mask == 0) != (lattice.mask == 0)).sum() < 1e-4 * 512 * 512


def test_fill_leaves_no_holes_and_keeps_seen_texels(model, verts):
    size = 256
    face = model.regions["face"][1]
    yy, xx = np.mgrid[:512, :512]
    img = np.dstack([40 + (xx * 180) // 511, 40 + (yy * 180) // 511, 40 + ((xx // 16 + yy // 16) % 2) * 180])
    img = img.astype(np.uint8)  # every colour channel in 40..220
    cam = yaw_camera(75)
    res = texture.project_texture(model, verts, cam, img, face, 0, size, mirror=False)
    assert 0.1 < res.coverage["seen_fraction"] < 0.8
    # every texel -- seen, hidden, or between islands -- is a blend of photo colours:
    # nothing black, nothing NaN-turned-zero, nothing outside the photo's range
    assert res.rgb.min() >= 40 and res.rgb.max() <= 220
    assert np.all(res.mask >= 0) and np.all(res.mask <= 1)
    # seen texels with full weight hold exactly the photo's colour at their point
    rows, cols = np.nonzero(res.mask >= 1.0)
    pick = np.random.default_rng(1).choice(len(rows), 200, replace=False)
    rows, cols = rows[pick], cols[pick]
    pts, _, found = texel_points(model, verts, face, 0, size, rows, cols)
    xy = cam.project(pts[found]) - 0.5
    want = np.stack([ndimage.map_coordinates(img[..., c].astype(np.float64), [xy[:, 1], xy[:, 0]], order=1)
                     for c in range(3)], 1)
    assert np.abs(res.rgb[rows[found], cols[found]] - want).max() <= 1.0
    # texels seen at a slant blend the photo with the fill: still close to the photo (the
    # red and green ramps are smooth; blue is a checker, left out)
    rows, cols = np.nonzero((res.mask > 0.2) & (res.mask < 0.8))
    pts, _, found = texel_points(model, verts, face, 0, size, rows[::7], cols[::7])
    xy = cam.project(pts[found]) - 0.5
    want = np.stack([ndimage.map_coordinates(img[..., c].astype(np.float64), [xy[:, 1], xy[:, 0]], order=1)
                     for c in range(2)], 1)
    assert np.abs(res.rgb[rows[::7][found], cols[::7][found], :2] - want).mean() < 6.0
    # the fill continues the seen texels: an unseen texel next to a seen one is close to it
    seen = res.mask >= 1.0
    rg = res.rgb[..., :2].astype(np.float64)
    unseen = res.mask == 0
    diffs = []
    for a, b in [(np.s_[:, 1:], np.s_[:, :-1]), (np.s_[:, :-1], np.s_[:, 1:]),
                 (np.s_[1:, :], np.s_[:-1, :]), (np.s_[:-1, :], np.s_[1:, :])]:
        edge = unseen[a] & seen[b]
        diffs.append(np.abs(rg[a] - rg[b])[edge])
    diffs = np.concatenate(diffs)
    assert len(diffs) > 100 and diffs.mean() < 6.0, diffs.mean()
    # the hidden far side is filled smoothly, not with one flat colour or speckle
    hidden = res.rgb[:, : size // 4].astype(np.float64)
    assert hidden.std() > 1.0
    assert np.abs(np.diff(hidden, axis=1)).mean() < 6.0


def test_mirror_fills_the_far_side_from_the_near_side(model, verts):
    size = 256
    face = model.regions["face"][1]
    yy, xx = np.mgrid[:512, :512]
    img = np.dstack([xx // 2, yy // 2, (xx + yy) // 4]).astype(np.uint8)
    res = texture.project_texture(model, verts, yaw_camera(75), img, face, 0, size)
    assert res.coverage["mirrored_weight"] > 0.2
    rows, cols = np.mgrid[:size:4, :size:4].reshape(2, -1)
    pts, _, found = texel_points(model, verts, face, 0, size, rows, cols)
    x, y, z = pts.T
    far = found & (x < -40) & (x > -60) & (y > -40) & (y < 0) & (z > 40)
    assert far.sum() > 20
    # the layout is left/right symmetric: the mirror texel of a far-cheek texel is on the
    # near cheek, where the photo is seen; an unseen texel copies it
    mc = size - 1 - cols[far]
    seen_mirror = res.mask[rows[far], mc] >= 1.0
    assert seen_mirror.mean() > 0.9
    assert np.array_equal(res.rgb[rows[far], cols[far]][seen_mirror], res.rgb[rows[far], mc][seen_mirror])
    off = texture.project_texture(model, verts, yaw_camera(75), img, face, 0, size, mirror=False)
    assert off.coverage["mirrored_weight"] == 0
    assert not np.array_equal(off.rgb[rows[far], cols[far]], res.rgb[rows[far], cols[far]])


def test_photo_much_finer_than_texture_does_not_alias(model, verts):
    size, w = 256, 2048
    cam = frontal_camera(size=w, focal=2400.0)  # ~5 photo pixels per texel
    face = model.regions["face"][1]
    yy, xx = np.mgrid[:w, :w]
    fine = np.repeat((((xx + yy) % 2) * 255).astype(np.uint8)[..., None], 3, 2)  # 1-pixel checker
    res = texture.project_texture(model, verts, cam, fine, face, 0, size)
    seen = res.mask >= 1.0
    assert seen.sum() > 0.2 * size * size
    assert np.abs(res.rgb[seen].astype(float) - 127.5).max() < 40, "averaged to grey, not speckle"
    # and the reduced photo is still sampled in the right place: 8-pixel blocks coded by index
    coded = np.dstack([xx // 8, yy // 8, np.full_like(xx, 128)]).astype(np.uint8)
    res = texture.project_texture(model, verts, cam, coded, face, 0, size)
    rows, cols = np.nonzero(res.mask >= 1.0)
    pick = np.random.default_rng(2).choice(len(rows), 200, replace=False)
    pts, _, found = texel_points(model, verts, face, 0, size, rows[pick], cols[pick])
    got = res.rgb[rows[pick][found], cols[pick][found], :2] * 8.0 + 4.0
    assert np.abs(got - cam.project(pts[found])).max() < 8.0


def test_progress_cancel_and_save(model, verts, tmp_path):
    steps = []
    job = Job(lambda f, m: steps.append(f))
    res = texture.project_texture(model, verts, frontal_camera(), coded_image(), model.regions["face"][1],
                                  0, 128, job)
    assert steps == sorted(steps) and steps[0] == 0.0 and steps[-1] == 1.0
    files = texture.save_texture(res, tmp_path, "texture")
    assert files == {"texture": "texture.png", "texture_mask": "texture_mask.png"}
    rgb, mask = Image.open(tmp_path / "texture.png"), Image.open(tmp_path / "texture_mask.png")
    assert rgb.mode == "RGB" and mask.mode == "L" and rgb.size == mask.size == (128, 128)
    assert np.array_equal(np.asarray(rgb), res.rgb)
    assert not list(tmp_path.glob("*.tmp*"))

    def cancel_midway(f, m):
        if f > 0.15:
            job2.cancel()

    job2 = Job(cancel_midway)
    with pytest.raises(CancelledError):
        texture.project_texture(model, verts, frontal_camera(), coded_image(), model.regions["face"][1], 0, 128, job2)


def test_nothing_seen_gives_a_plain_tile(model, verts):
    # a camera 600 mm behind the head, looking away from it
    behind = Camera(256, 256, 600.0, np.diag([1.0, -1.0, -1.0]).tolist(), [0.0, 0.0, -600.0])
    res = texture.project_texture(model, verts, behind, coded_image(), model.regions["face"][1], 0, 64)
    assert res.mask.max() == 0 and res.coverage["seen_fraction"] == 0
    assert np.all(res.rgb == np.array(texture.FILL_EMPTY, np.uint8))


def test_bad_inputs(model, verts):
    face = model.regions["face"][1]
    with pytest.raises(ValueError, match="vertices"):
        texture.project_texture(model, verts[:100], frontal_camera(), coded_image(), face, 0, 64)
    with pytest.raises(ValueError, match="image"):
        texture.project_texture(model, verts, frontal_camera(), coded_image()[..., :2], face, 0, 64)
    with pytest.raises(ValueError, match="polygon range"):
        texture.project_texture(model, verts, frontal_camera(), coded_image(), (0, 10 ** 9), 0, 64)


def test_full_size_face_tile(model, verts):
    """One run at the pipeline's default 2048²: same figures as at low resolution."""
    cam = frontal_camera()
    big = texture.project_texture(model, verts, cam, coded_image(), model.regions["face"][1], 0, 2048)
    small = texture.project_texture(model, verts, cam, coded_image(), model.regions["face"][1], 0, 256)
    assert big.rgb.shape == (2048, 2048, 3)
    assert abs(big.coverage["seen_fraction"] - small.coverage["seen_fraction"]) < 0.01
    assert big.rgb[..., 2].min() == 128 and big.rgb[..., 2].max() == 128, "no black anywhere"


def test_the_uv_layout_is_made_once_per_model_and_gives_the_same_texture(model, verts, monkeypatch):
    """The per-model part of texturing (texel -> triangle, mirror pairs) is cached: a second
    photo on the same model skips it and gets the texture a fresh layout gives."""
    face = model.regions["face"][1]
    img = coded_image(height=512)
    cam = yaw_camera(20)
    texture._LAYOUTS.clear()
    first = texture.project_texture(model, verts, cam, img, face, 0, 256)
    calls = []
    real = texture.raster.rasterize
    monkeypatch.setattr(texture.raster, "rasterize", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = texture.project_texture(model, verts, cam, img, face, 0, 256)
    assert not calls, "the layout came from the cache"
    np.testing.assert_array_equal(first.rgb, again.rgb)
    np.testing.assert_array_equal(first.mask, again.mask)
    texture.project_texture(model, verts, cam, img, face, 0, 128)
    assert calls == [1], "another size is another layout"


def test_occlusion_query_agrees_with_trimesh_nearest_hit(model, verts):
    """The visibility test's embree occlusion query answers as trimesh's intersects_any does, on
    rays from the surface toward random directions (many hit the face, many escape)."""
    from backend.geometry.rays import Occlusion, ray_caster

    tris = model.triangles(tuple(model.regions["face"][1]))[0]
    rng = np.random.default_rng(3)
    start = verts[rng.choice(np.unique(tris), 4000)] + rng.normal(0, 2.0, (4000, 3))
    dirs = rng.normal(0, 1, (4000, 3))
    ours = Occlusion(verts, tris)(start, dirs)
    ref = ray_caster(verts, tris).intersects_any(start, dirs)
    assert 0.2 < ours.mean() < 0.8
    assert (ours != ref).sum() <= 4  # rays grazing an edge may go either way in float32


def test_upsample2_is_the_bilinear_two_times_filter():
    """Texel-centre-aligned 2x bilinear, edges clamped, cropped to odd shapes, 2-D and 3-D."""
    from backend.core.imaging import upsample2

    rng = np.random.default_rng(0)
    for shape in [(5, 7, 3), (4, 4), (1, 3, 1), (6, 1, 2)]:
        a = rng.random(shape).astype(np.float32)

        def ref_axis(x, ax):
            x = np.moveaxis(x, ax, 0)
            prev = np.concatenate([x[:1], x[:-1]])
            nxt = np.concatenate([x[1:], x[-1:]])
            out = np.empty((2 * len(x),) + x.shape[1:], np.float64)
            out[0::2] = 0.75 * x + 0.25 * prev
            out[1::2] = 0.75 * x + 0.25 * nxt
            return np.moveaxis(out, 0, ax)

        want = ref_axis(ref_axis(a.astype(np.float64), 0), 1)
        crop = (2 * shape[0] - 1, 2 * shape[1])
        got = upsample2(a, crop)
        assert got.shape == crop + shape[2:] and got.dtype == np.float32
        assert np.abs(got - want[: crop[0], : crop[1]]).max() < 1e-6


def test_fill_and_mirror_keep_fully_trusted_texels_bit_for_bit():
    rng = np.random.default_rng(5)
    w = np.where(rng.random((64, 64)) < 0.5, 1.0, rng.random((64, 64)) * 0.9).astype(np.float32)
    w[rng.random((64, 64)) < 0.2] = 0.0
    c = (rng.random((64, 64, 3)) * 255).astype(np.float32)
    ok = rng.random((64, 64)) < 0.7
    fill_w, fill_c, add = texture.mirror_blend(w, c, ok)
    keep = (add == 0) & (w == 1)
    assert keep.sum() > 500 and np.array_equal(fill_c[keep], c[keep])
    gain = add > 0  # a blend of own and mirrored colour, by their weights
    want = (c * w[..., None] + c[:, ::-1] * add[..., None])[gain] / fill_w[gain][:, None]
    assert gain.sum() > 300 and np.abs(fill_c[gain] - want).max() < 1e-3
    out = texture.pull_push_fill(fill_c, fill_w)
    full = fill_w >= 1.0
    assert np.array_equal(out[full], fill_c[full])
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 255.0

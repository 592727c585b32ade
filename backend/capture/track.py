"""A clip -> AU control curves for a reconstructed face (protocol.capture.Capture in its job folder).

Per frame: the face is tracked (the dense mesh placed on a crop around the previous frame's
points; a full detection when that fails or on the first frame), then fitted with the face's
identity held fixed, starting from the previous frame's pose and expression. Decoding and
tracking run in a worker thread a few frames ahead of the fits (MediaPipe and the decoder let go
of the GIL; the two cores then share the work). Frames without a
face are listed and filled by straight lines between their neighbours. The controls' curves are
smoothed (smooth.zero_lag) and reduced to keys (keys.reduce_keys); the head's rotation is kept
relative to the first tracked frame.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from protocol.capture import Capture, capture_file
from protocol.job import Detection, FaceReconstruction

from ..core.errors import BadRequestError, FaceDetError, NoFaceError
from ..core.progress import Job
from ..models.emotions import au_rig, controls_from_weight_rows
from ..models.loader import load_model
from ..reconstruct import fitting
from ..reconstruct.scene_export import MODEL_TO_BLENDER
from ..vision import dense, landmarks
from . import keys, smooth, video

DEFAULT_TOLERANCE = 0.02  # control units: 2 % of a slider's range
LONG_LOSS_S = 0.5  # a run of lost frames at least this long is named in the warnings
OUTER_PASSES = 2  # outline correspondences: a frame moves little from the last one
TRACK_AHEAD = 4  # frames tracked ahead of their fit (their detections wait, not the images)


def _track(frame: np.ndarray, prev: np.ndarray | None) -> Detection | None:
    """The face in ``frame``: near ``prev`` (the last frame's 478 points) when given, else anywhere."""
    pts = dense.landmarks_in_box(frame, dense.box_of(prev)) if prev is not None else None
    if pts is not None:
        box = dense.box_of(pts)
        return Detection(box=box, score=1.0, landmarks=pts[dense.TO_68].tolist(), dense=pts.tolist(),
                         detector="mediapipe-track")
    try:
        det = landmarks.detect_face(frame)
    except NoFaceError:
        return None
    return det


def _tracked(video_path: str, max_frames: int | None):
    """(index, time, (width, height), detection or None, tracking seconds) per frame, decoded and
    tracked in a worker thread up to TRACK_AHEAD frames ahead; its errors are raised here. Each
    frame is tracked from the last frame's points whatever its fit makes of them."""
    out: queue.Queue = queue.Queue(maxsize=TRACK_AHEAD)
    stop = threading.Event()
    done = object()

    def put(item) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        prev = None
        try:
            for i, t, frame in video.frames(video_path, max_frames):
                if stop.is_set():
                    return
                a = time.perf_counter()
                det = _track(frame, prev)
                prev = det.dense_points if det is not None else None
                put((i, t, (frame.shape[1], frame.shape[0]), det, time.perf_counter() - a))
            put(done)
        except BaseException as exc:  # noqa: BLE001 -- handed to the fitting thread, which raises it
            put(exc)

    worker = threading.Thread(target=work, name="capture-track", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:  # finished, failed or cancelled: the worker stops at its next frame
        stop.set()
        worker.join()


def _fill(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rows where ``ok`` is False replaced by straight lines between the nearest good rows (held
    flat before the first and after the last)."""
    idx = np.arange(len(values))
    out = values.copy()
    for k in range(values.shape[1]):
        out[~ok, k] = np.interp(idx[~ok], idx[ok], values[ok, k])
    return out


def _runs(lost: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in lost:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return runs


def capture(job_dir: str, video_path: str, name: str = "", tolerance: float = DEFAULT_TOLERANCE,
            job: Job | None = None, max_frames: int | None = None, smoothing: bool = True) -> dict:
    job = job or Job()
    folder = Path(job_dir)
    # the file name's letters, digits, - and _ (ASCII: capture_<name>.json travels between systems)
    name = name or "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_" else "_"
                           for ch in Path(video_path).stem)[:64] or "clip"
    try:
        out_name = capture_file(name)
    except ValueError as exc:
        raise BadRequestError(str(exc), "Name the capture with letters, digits, - and _.") from exc
    rec = FaceReconstruction.load(folder)
    if rec.fit is None:
        raise BadRequestError(f"{folder} holds no fitted face.", "Reconstruct the face from a photo first.")
    model = load_model(rec.model_dir)
    identity = np.asarray(rec.fit.identity, np.float64)
    info = video.probe(video_path)
    rig = au_rig(model)
    names = list(model.expression_names)
    total = min(info.frames, max_frames) if info.frames and max_frames else (info.frames or max_frames or 0)

    job.report(0.0, f"Tracking the face in {Path(video_path).name} ({info.width}x{info.height}, {info.fps:g} fps)")
    W, angles, times, lost = [], [], [], []
    prev_fit = None
    t_track = t_fit = 0.0
    t0 = time.perf_counter()
    size = None
    tracked = _tracked(video_path, max_frames)
    try:
        for i, t, size, det, dt in tracked:
            job.check()
            times.append(t)
            t_track += dt
            b = time.perf_counter()
            fit = None
            if det is not None:
                try:
                    fit = fitting.fit_model(model, det, size, identity=identity, start=prev_fit, max_outer=OUTER_PASSES,
                                            posterior=False)
                except FaceDetError:
                    fit = None
            t_fit += time.perf_counter() - b
            if fit is None:
                lost.append(i)
                W.append(np.full(len(names), np.nan))
                angles.append(np.full(3, np.nan))
                prev_fit = None
            else:
                W.append(np.asarray(fit.expression))
                angles.append(np.asarray(fitting.rotation_angles(np.asarray(fit.camera.rotation))))
                prev_fit = fit
            if total:
                job.report(min(0.95, 0.95 * (i + 1) / total), f"Frame {i + 1} of {total}")
            elif (i + 1) % 30 == 0:
                job.report(0.5, f"Frame {i + 1}")
    finally:  # a cancel or error stops the tracking worker now, not when garbage is collected
        tracked.close()
    if not times:
        raise BadRequestError(f"{Path(video_path).name} has no frames.", "Choose another clip.")
    n = len(times)
    if len(lost) == n:
        raise NoFaceError(f"No face was found in any of the {n} frames of {Path(video_path).name}.",
                          "Use a clip in which the face is seen from the front or three-quarter, at least ~100 px "
                          "wide and evenly lit.")
    job.report(0.96, "Smoothing and reducing to keys")
    ok = np.ones(n, bool)
    ok[lost] = False
    T = np.asarray(times)
    W = _fill(np.asarray(W), ok)
    A = _fill(np.asarray(angles), ok)  # absolute (yaw, pitch, roll), degrees
    keys_out, per_frame = {}, {}
    stacked = controls_from_weight_rows(rig, names, W)
    raw_jitter = float(np.median(np.abs(np.diff(stacked, axis=0)))) if n > 1 else 0.0
    if smoothing and n > 2:
        stacked = smooth.zero_lag(stacked, T)
        A = smooth.zero_lag(A, T)
    # the head's turn since the first tracked frame, D = H0^T H in the model's frame (H as
    # rotation_angles reads it: the fixed camera sees H0 D), turned into Blender's world frame,
    # where the face object's mesh lives (M D M^T, M = MODEL_TO_BLENDER)
    H = Rotation.from_euler("yxz", A, degrees=True)
    first = int(np.argmax(ok))
    M = Rotation.from_matrix(MODEL_TO_BLENDER)
    quat = (M * H[first].inv() * H * M.inv()).as_quat(scalar_first=True)
    A = A - A[first]  # relative to the first tracked frame
    stacked = np.clip(stacked, 0.0, 1.0)
    for k, c in enumerate(rig):
        v = stacked[:, k]
        per_frame[c["key"]] = [round(float(x), 4) for x in v]
        idx = keys.reduce_keys(T, v, tolerance)
        keys_out[c["key"]] = [[round(float(T[j]), 5), round(float(v[j]), 4)] for j in idx]
    runs = _runs(lost)
    fps = info.fps
    long_runs = [r for r in runs if (r[1] - r[0] + 1) / fps >= LONG_LOSS_S]
    warnings = []
    if long_runs:
        where = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in long_runs[:8])
        warnings.append(f"the face was lost for {sum(b - a + 1 for a, b in long_runs)} frames in runs of "
                        f"{LONG_LOSS_S:g} s or more (frames {where}); they are interpolated: check them")
    elapsed = time.perf_counter() - t0
    cap = Capture(video=info.path, fps=fps, width=size[0], height=size[1], times=[round(float(x), 5) for x in T],
                  controls=per_frame, head={"yaw": [round(float(x), 3) for x in A[:, 0]],
                                            "pitch": [round(float(x), 3) for x in A[:, 1]],
                                            "roll": [round(float(x), 3) for x in A[:, 2]]},
                  head_quaternion=[[round(float(x), 6) for x in q] for q in quat],
                  keys=keys_out, tolerance=tolerance, lost=lost, lost_runs=runs,
                  stats={"frames": n, "tracked": int(ok.sum()), "seconds": round(elapsed, 3),
                         "frames_per_second": round(n / elapsed, 2) if elapsed > 0 else None,
                         "track_s": round(t_track, 3), "fit_s": round(t_fit, 3),
                         "smoothing": {"filter": "one-euro, forwards-backwards", "min_cutoff_hz": smooth.MIN_CUTOFF,
                                       "beta": smooth.BETA} if smoothing else None,
                         "raw_median_step": round(raw_jitter, 4),
                         "keys": int(sum(len(v) for v in keys_out.values())), "warnings": warnings})
    cap.save(folder, name)
    job.report(1.0, f"{n} frames, {int(ok.sum())} tracked")
    return {"job_dir": str(folder.resolve()), "file": out_name, "name": name, "frames": n, "tracked": int(ok.sum()),
            "lost_runs": runs, "warnings": warnings, "stats": cap.stats}

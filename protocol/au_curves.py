"""Facial animation curves in the formats other tools write: Live Link Face CSV (Epic's iOS
capture app: ARKit's 52 blendshapes per row) and OpenFace 2.x CSV (FACS AU intensities per video
frame). Pure Python: the add-on reads and writes them; both sides may.

Live Link Face (column order as the app writes it, the same order as its Live Link stream):
``Timecode, BlendShapeCount,`` the 52 ARKit names (EyeBlinkLeft … TongueOut), then HeadYaw,
HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch,
RightEyeRoll. ``Timecode`` is ``HH:MM:SS:FF.fff`` (FF the frame within the second, .fff a
sub-frame); ``BlendShapeCount`` is the number of value columns (61). Values are 0–1. ARKit's
"Left" is the subject's left, as our ``_L`` shapes.

The head's turn (HeadYaw, HeadPitch, HeadRoll) is written as the angle / 180°: Epic's ARKit face
support maps Unreal's rotator range −180..180° to −1..1 (``AppleARKitConversion``: "Map the
-180..180 range to -1..1"), so a value × 180 is degrees. Here, in degrees: yaw + turns the face
towards the subject's left, pitch + lifts the chin, roll + tilts the head towards the subject's
right shoulder, applied yaw, then pitch, then roll (Unreal's rotator order). These signs were not
checked against a take from a phone (there is none here); reading and writing use the same ones,
so a round trip is exact. The eyes' rotation columns are not read: the EyeLook shapes carry gaze.

OpenFace 2.x (FeatureExtraction's CSV): ``frame, face_id, timestamp, confidence, success``, …, the
intensities ``AU01_r`` … ``AU45_r`` on 0–5 and the presences ``AU01_c`` …; OpenFace pads its
column names with a space after each comma, which is stripped.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

ARKIT = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawLeft", "JawRight", "JawOpen", "MouthClose", "MouthFunnel",
    "MouthPucker", "MouthLeft", "MouthRight", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft",
    "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft",
    "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)
ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw",
             "RightEyePitch", "RightEyeRoll")
LLF_HEADER = ("Timecode", "BlendShapeCount") + ARKIT + ROTATIONS
HEAD = {"yaw": "HeadYaw", "pitch": "HeadPitch", "roll": "HeadRoll"}  # the head's turn, in degrees here
HEAD_DEGREES_PER_UNIT = 180.0  # a Live Link Face head value x 180 = degrees (see above)
LIVE_LINK_FACE, OPENFACE = "Live Link Face", "OpenFace"
TIMECODE_RATES = (24, 25, 30, 48, 50, 60)
OPENFACE_AU = re.compile(r"^AU(\d\d)_r$")


class CurveFileError(ValueError):
    """A file that is not what it says: the message names the column or line and what to do."""


def arkit_to_shape(name: str) -> str:
    """ARKit's name -> the morphable model's shape name (EyeBlinkLeft -> eyeBlink_L); a shape
    ARKit has once and the model per side (BrowInnerUp, CheekPuff) keeps the bare name."""
    base = name[0].lower() + name[1:]
    for side, tag in (("Left", "_L"), ("Right", "_R")):
        if base.endswith(side):
            return base[: -len(side)] + tag
    return base


@dataclass
class Curves:
    """Per-frame values: ``frames`` (scene frames, ascending) and ``values[name]`` (one per frame);
    names are ARKit shapes (Live Link Face) or AU numbers as "AU12" (OpenFace, 0–1)."""

    frames: list[int]
    values: dict[str, list[float]]
    skipped: list[str] = field(default_factory=list)  # what was left out, in words
    head: dict[str, list[float]] = field(default_factory=dict)  # "yaw", "pitch", "roll": degrees per frame


def _timecode_seconds(tc: str, rate: int) -> float:
    h, m, s, f = tc.split(":")
    return int(h) * 3600 + int(m) * 60 + int(s) + float(f) / rate


def _to_frames(seconds: list[float], fps: float, start: int) -> list[int]:
    t0 = seconds[0]
    return [start + round((t - t0) * fps) for t in seconds]


def _merge(frames: list[int], values: dict[str, list[float]]) -> tuple[list[int], dict[str, list[float]]]:
    """Rows landing on one scene frame (capture faster than the scene) averaged."""
    order = sorted(set(frames))
    idx = {f: i for i, f in enumerate(order)}
    out = {}
    for k, vs in values.items():
        acc, n = [0.0] * len(order), [0] * len(order)
        for f, v in zip(frames, vs):
            acc[idx[f]] += v
            n[idx[f]] += 1
        out[k] = [a / c for a, c in zip(acc, n)]
    return order, out


def _rows(text: str, what: str) -> tuple[list[str], list[list[str]]]:
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise CurveFileError(f"the {what} file has no data rows")
    return [c.strip() for c in rows[0]], rows[1:]


def _timecode_rate(frame_fields: list[float], fps: float) -> int:
    """The timecode's frames per second: the scene's when the file's frame numbers fit under it
    (a short take cannot tell 24 from 30), else the smallest standard rate above them."""
    top = max(frame_fields)
    if top < round(fps):
        return round(fps)
    return next((r for r in TIMECODE_RATES if top < r), 60)


def read_live_link_face(text: str, fps: float, start: int = 1) -> Curves:
    header, rows = _rows(text, "Live Link Face")
    missing = [c for c in ("Timecode",) + ARKIT if c not in header]
    if missing:
        raise CurveFileError(f"not a Live Link Face CSV: no column {', '.join(missing[:6])}"
                             f"{' …' if len(missing) > 6 else ''} (it starts: {', '.join(header[:4])}); export the "
                             "take's CSV from the Live Link Face app")
    col = {c: i for i, c in enumerate(header)}
    stamps: list[str] = []
    try:
        stamps = [r[col["Timecode"]].strip() for r in rows]
        frame_fields = [float(s.split(":")[3]) for s in stamps]
        rate = _timecode_rate(frame_fields, fps)
        seconds = [_timecode_seconds(s, rate) for s in stamps]
    except (ValueError, IndexError) as exc:
        raise CurveFileError(f"column Timecode: '{stamps[0] if stamps else ''}' is not HH:MM:SS:FF.fff ({exc})") from None
    values: dict[str, list[float]] = {}
    for name in ARKIT:
        out = []
        for i, r in enumerate(rows):
            try:
                v = float(r[col[name]])
            except (ValueError, IndexError):
                raise CurveFileError(f"line {i + 2}, column {name}: '{r[col[name]] if col[name] < len(r) else ''}' "
                                     "is not a number") from None
            out.append(min(max(v, 0.0), 1.0))
        values[name] = out
    head: dict[str, list[float]] = {}
    for k, c in HEAD.items():
        if c not in col:
            continue
        try:
            head[k] = [float(r[col[c]]) * HEAD_DEGREES_PER_UNIT for r in rows]
        except (ValueError, IndexError):
            bad = next(i for i, r in enumerate(rows) if not _is_number(r, col[c]))
            raise CurveFileError(f"line {bad + 2}, column {c}: not a number") from None
    at = _to_frames(seconds, fps, start)
    frames, values = _merge(at, values)
    head = _merge(at, head)[1]  # the same rows land on the same frames
    skipped = []
    if head and len(head) < 3:
        skipped.append(f"head turn: only {', '.join(HEAD[k] for k in head)} (all three are needed)")
        head = {}
    if any(c in col for c in ROTATIONS[3:]):
        skipped.append("eye rotation columns (gaze is in the EyeLook shapes)")
    return Curves(frames, values, skipped, head)


def _is_number(row: list[str], i: int) -> bool:
    try:
        float(row[i])
        return True
    except (ValueError, IndexError):
        return False


def write_live_link_face(frames: list[int], values: dict[str, list[float]], fps: float,
                         head: dict[str, list[float]] | None = None) -> str:
    """A Live Link Face CSV of ARKit values per frame; ``head``: the head's turn in degrees
    ("yaw", "pitch", "roll" per frame; 0 when not given), the eyes' rotations 0."""
    head = head or {}
    turn = [[head[k][i] / HEAD_DEGREES_PER_UNIT if k in head else 0.0 for k in HEAD] for i in range(len(frames))]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LLF_HEADER)
    rate = round(fps)
    for i, f in enumerate(frames):
        t = (f - frames[0]) / fps
        whole = int(t)
        sub = (t - whole) * rate
        tc = f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{sub:06.3f}"
        w.writerow([tc, len(ARKIT) + len(ROTATIONS)] + [f"{values.get(n, [0.0] * len(frames))[i]:.6f}" for n in ARKIT]
                   + [f"{v:.6f}" for v in turn[i]] + ["0"] * (len(ROTATIONS) - len(HEAD)))
    return buf.getvalue()


def read_openface(text: str, fps: float, start: int = 1, min_confidence: float = 0.5) -> Curves:
    header, rows = _rows(text, "OpenFace")
    need = [c for c in ("timestamp", "confidence", "success") if c not in header]
    aus = [(c, f"AU{int(m.group(1))}") for c in header if (m := OPENFACE_AU.match(c))]
    if need or not aus:
        raise CurveFileError(f"not an OpenFace 2.x CSV: no column {', '.join(need + ([] if aus else ['AU01_r …']))}; "
                             "run FeatureExtraction with -aus")
    col = {c: i for i, c in enumerate(header)}
    kept, seconds, lost = [], [], []
    for i, r in enumerate(rows):
        try:
            ok = float(r[col["success"]]) >= 1 and float(r[col["confidence"]]) >= min_confidence
            t = float(r[col["timestamp"]])
        except (ValueError, IndexError):
            raise CurveFileError(f"line {i + 2}: timestamp, confidence or success is not a number") from None
        if ok:
            kept.append(r)
            seconds.append(t)
        else:
            lost.append(i + 2)
    if not kept:
        raise CurveFileError("no row of the OpenFace CSV has a tracked face (success 1, confidence ≥ "
                             f"{min_confidence})")
    values = {}
    for c, au in aus:
        try:
            values[au] = [min(max(float(r[col[c]]) / 5.0, 0.0), 1.0) for r in kept]  # intensity 0–5 -> 0–1
        except (ValueError, IndexError):
            raise CurveFileError(f"column {c}: a value is not a number") from None
    frames, values = _merge(_to_frames(seconds, fps, start), values)
    skipped = [f"{len(lost)} rows without a tracked face (lines {', '.join(map(str, lost[:8]))}"
               f"{' …' if len(lost) > 8 else ''})"] if lost else []
    return Curves(frames, values, skipped)


def read_curve_file(text: str, fps: float, start: int = 1) -> tuple[str, Curves]:
    """A CSV of either layout, told apart by its first line: (LIVE_LINK_FACE or OPENFACE, curves)."""
    first = text.split("\n", 1)[0]
    if "Timecode" in first and "BlendShapeCount" in first:
        return LIVE_LINK_FACE, read_live_link_face(text, fps, start)
    names = _rows(text, "CSV")[0]  # a file without data rows is named as such first
    if not any(OPENFACE_AU.match(c) or c in ("timestamp", "confidence", "success") for c in names):
        raise CurveFileError(f"neither a Live Link Face CSV (its first line starts Timecode, BlendShapeCount) nor an "
                             f"OpenFace 2.x CSV (timestamp, confidence, success, AU01_r …); this one starts "
                             f"{', '.join(names[:4])}")
    return OPENFACE, read_openface(text, fps, start)

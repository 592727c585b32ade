"""The backend's methods: names and typed parameters, validated the same way wherever they are
built (the add-on, the headless CLI) or received (the server).

Each method's parameters are a dataclass; :func:`parse` turns a request's ``params`` object
into one, answering a bad one with :class:`rpc.InvalidParams` naming the problem; :func:`to_params`
is what a client sends. Allowed JSON types come from the annotations (``float`` also takes an
integer, ``Optional`` also null, never a boolean for a number); ``check`` metadata adds a range or
choice. A receiver can add checks of its own (the server checks ``model`` against its registry).
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from . import rpc
from ._typed import hints, to_json
from .details import AUTO_MODEL, RIG_SIZES

HEALTH = "health"
RECONSTRUCT = "reconstruct"
DETAILS = "details"
WRINKLES = "wrinkles"
RIG = "rig"
FETCH_MODEL = "fetch_model"
CAPTURE = "capture"
PHOTO_LIGHTING = "photo_lighting"
NEURAL_TRAIN = "neural_train"
NEURAL_FRAME = "neural_frame"
CANCEL = "cancel"
CANCEL_NOTIFICATION = "$/cancelRequest"  # the LSP spelling, a notification
SHUTDOWN = "shutdown"
WAIT = "diagnostics.wait"
FAIL = "diagnostics.fail"
PROGRESS = "progress"  # server -> client notification: {id, fraction, message}

Check = Callable[[Any], Optional[str]]  # a complaint ("must be 1 .. 100000") or None


def check(fn: Check, **kw) -> Any:
    """``field(...)`` with a value check."""
    return field(metadata={"check": fn}, **kw)


def _one_of(values) -> Check:
    words = [str(v) for v in values]
    text = ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
    return lambda v: None if v in values else f"must be {text}"


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _in(lo, hi, integer: bool = False) -> Callable[[Any], Optional[str]]:
    """'' for a number in lo..hi (an integer if asked), else what it must be."""
    def f(v):
        if not (_integer(v) if integer else _number(v)) or not lo <= v <= hi:
            return f"must be {'an integer' if integer else 'a number'} in {lo} .. {hi}"
        return None
    return f


# reconstruct's options: each one's check (docs: backend.reconstruct.pipeline.DEFAULT_OPTIONS)
def _face(v) -> Optional[str]:
    """Which face of a photo with several: its number from the left, or a box [l, t, r, b] in pixels."""
    if _integer(v) and v >= 0:
        return None
    if isinstance(v, list) and len(v) == 4 and all(_number(x) for x in v) and v[0] < v[2] and v[1] < v[3]:
        return None
    return "must be a face number (0 = the leftmost) or a box [left, top, right, bottom] in pixels"


OPTIONS: dict[str, Check] = {"texture_size": _in(64, 8192, True), "head_texture_size": _in(64, 8192, True),
                             "n_identity": _in(1, 500, True), "render_long_side": _in(16, 16384, True),
                             "age": _in(1, 120), "face": _face}


def _options(v: dict) -> Optional[str]:
    for k, val in v.items():
        if k not in OPTIONS:
            return f"has an unknown option '{k}' (known: {', '.join(OPTIONS)})"
        complaint = OPTIONS[k](val)
        if complaint:
            return f"option '{k}' {complaint}, not {json.dumps(val)[:40]}"
    return None


def _list_of(item: Check) -> Check:
    def f(v: list) -> Optional[str]:
        for i, x in enumerate(v):
            complaint = item(x)
            if complaint:
                return f"item {i} ({json.dumps(x)[:40]}) {complaint}"
        return None
    return f


def _values(v) -> Optional[str]:
    """{name: number 0..1}: AU or control values."""
    if not isinstance(v, dict):
        return "must be an object of AU values"
    for k, x in v.items():
        if not _number(x) or not 0.0 <= x <= 1.0:
            return f"'{k}' must be a number in 0 .. 1, not {json.dumps(x)[:40]}"
    return None


def _key(v) -> Optional[str]:
    if not isinstance(v, dict) or set(v) != {"frame", "values"} or not _integer(v["frame"]):
        return 'must be {"frame": <integer>, "values": {<control>: <0..1>}}'
    return _values(v["values"])


@dataclass
class NoParams:
    """health, shutdown."""


@dataclass
class ReconstructParams:
    image: str  # the photo
    out_dir: str  # the job folder to write
    model_dir: Optional[str] = None  # the default model's folder or a Basel Face Model file
    options: Optional[dict] = check(_options, default=None)  # OPTIONS


@dataclass
class RigParams:
    model_dir: Optional[str] = None  # as ReconstructParams.model_dir


@dataclass
class FetchModelParams:
    dest: str  # a new folder for the default model (the release's files)
    source: Optional[str] = None  # a mirror or local copy of the repository instead of GitHub


@dataclass
class DetailsParams:
    job_dir: str
    # target weights in the model's shape order, or
    expression: Optional[list] = check(_list_of(_in(-1.0, 2.0)), default=None)
    aus: Optional[dict] = check(_values, default=None)  # target Action Units (AU12, AU12L), or
    controls: Optional[dict] = check(_values, default=None)  # the face's AU rig controls (scene.json au_rig keys)
    # none of the three: the photo's own expression
    age: Optional[float] = check(_in(1, 120), default=None)  # years; None: the face's estimated age
    sizes: Optional[list] = check(_list_of(_in(16, 8192, True)), default=None)  # None: details.SIZES
    seed: int = 0
    model: str = AUTO_MODEL  # a detail model of the backend's registry (health lists them)


@dataclass
class WrinklesParams:
    job_dir: str
    size: int = check(_one_of(RIG_SIZES), default=1024)  # per-AU and key map size
    age: Optional[float] = check(_in(1, 120), default=None)
    seed: int = 0
    # AU controls to make maps for; None: all
    controls: Optional[list] = check(_list_of(lambda x: None if isinstance(x, str) else "must be a control name"),
                                     default=None)
    keys: list = check(_list_of(_key), default_factory=list)  # [{"frame": int, "values": {control: value}}]
    base_size: int = check(_one_of(RIG_SIZES), default=4096)
    model: str = AUTO_MODEL


def _capture_name(v) -> Optional[str]:
    return None if isinstance(v, str) and (v == "" or re.match(r"^[A-Za-z0-9_-]{1,64}$", v)) else \
        "must be 1-64 letters, digits, - and _ (or empty: the video's name)"


@dataclass
class CaptureParams:
    job_dir: str  # the face (a reconstruction) whose identity the clip is fitted with
    video: str  # the clip
    name: str = check(_capture_name, default="")  # capture_<name>.json; "": from the video's file name
    tolerance: float = check(_in(0.0, 0.5), default=0.02)  # key reduction, control units
    max_frames: Optional[int] = check(_in(1, 10_000_000, True), default=None)
    smoothing: bool = True


@dataclass
class PhotoLightingParams:
    job_dir: str  # a reconstruction: its albedo tiles and lighting world are made (once)


@dataclass
class NeuralTrainParams:
    job_dir: str  # a reconstruction: its renderer is trained on its photo (once per photo and fit)
    steps: int = check(_in(1, 100_000, True), default=600)


@dataclass
class NeuralFrameParams:
    job_dir: str  # a face whose renderer is trained
    rasters: str  # Blender's raster render of the frame (multilayer EXR: views "detailed", "proxy")
    out: str  # the neural image (PNG, RGBA) to write


@dataclass
class WaitParams:
    seconds: float = check(lambda v: None if 0 <= v <= 86400 else "must be 0 .. 86400")
    steps: int = check(lambda v: None if 1 <= v <= 100000 else "must be 1 .. 100000", default=10)
    noise: bool = False


@dataclass
class FailParams:
    kind: str = check(_one_of(("internal", "facedet", "exit")))


@dataclass
class CancelParams:
    id: Union[str, int, float]  # noqa: A003 - the protocol's name


PARAMS: dict[str, type] = {
    HEALTH: NoParams, RECONSTRUCT: ReconstructParams, DETAILS: DetailsParams, WRINKLES: WrinklesParams, RIG: RigParams,
    FETCH_MODEL: FetchModelParams, CAPTURE: CaptureParams, PHOTO_LIGHTING: PhotoLightingParams,
    NEURAL_TRAIN: NeuralTrainParams, NEURAL_FRAME: NeuralFrameParams,
    CANCEL: CancelParams, CANCEL_NOTIFICATION: CancelParams, SHUTDOWN: NoParams, WAIT: WaitParams, FAIL: FailParams,
}


def choice_check(names: list[str]) -> Check:
    """A check for a value that must be one of ``names`` ("must be a, b or c")."""
    return _one_of(list(names))


# ---- validation ------------------------------------------------------------------------------

_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "an object",
          list: "an array", type(None): "null"}


def _json_types(tp) -> tuple:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return tuple(t for a in typing.get_args(tp) for t in _json_types(a))
    if tp is float:
        return (int, float)
    return (origin or tp,)


def type_name(types_: tuple) -> str:
    if float in types_:  # "a number" covers int
        types_ = tuple(t for t in types_ if t is not int)
    return " or ".join(dict.fromkeys(_NAMES.get(t, t.__name__) for t in types_))


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def parse(method: str, params: Any, checks: Optional[dict[str, Check]] = None):
    """The method's params dataclass from a request's ``params``; raises :class:`rpc.InvalidParams`
    (unknown method: :class:`rpc.MethodNotFound`). ``checks``: extra value checks by name."""
    cls = PARAMS.get(method)
    if cls is None:
        raise rpc.MethodNotFound(f"Unknown method '{method}'.")
    spec = dataclasses.fields(cls)
    names = [f.name for f in spec]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise rpc.InvalidParams(f"{method}: params must be an object (named parameters), "
                                f"not {type(params).__name__}.", f"Send {{{', '.join(names)}}}.")
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise rpc.InvalidParams(f"{method}: unknown parameter(s) {', '.join(unknown)}.",
                                f"Expected: {', '.join(names) or 'none'}.")
    field_types = hints(cls)
    out = {}
    for f in spec:
        allowed = _json_types(field_types[f.name])
        if f.name not in params:
            if _required(f):
                raise rpc.InvalidParams(f"{method}: missing parameter '{f.name}'.",
                                        f"'{f.name}' must be {type_name(allowed)}.")
            continue
        v = params[f.name]
        if not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed):
            raise rpc.InvalidParams(f"{method}: '{f.name}' must be {type_name(allowed)}, not {json.dumps(v)[:60]}.")
        for fn in (f.metadata.get("check"), (checks or {}).get(f.name)):
            complaint = fn(v) if fn is not None and v is not None else None
            if complaint:
                raise rpc.InvalidParams(f"{method}: '{f.name}' {complaint}.")
        out[f.name] = v
    return cls(**out)


def to_params(p) -> Any:
    """What a client sends for a params dataclass; anything else as it is (None: {})."""
    if dataclasses.is_dataclass(p):
        return to_json(p)
    return {} if p is None else p

"""Dataclasses <-> plain JSON values, for the protocol's typed records.

``from_json(cls, value)`` builds a dataclass from a decoded JSON object, recursing into fields
typed as dataclasses, ``list[...]``, ``dict[str, ...]`` and ``Optional[...]``; keys the class does
not know are ignored (a newer writer may add fields), missing ones take their defaults.
``to_json(obj)`` is ``dataclasses.asdict`` (tuples become lists, as JSON has them).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache
from typing import Any, TypeVar, Union

T = TypeVar("T")


@lru_cache(maxsize=None)
def hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _convert(tp, value):
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(args[0], value) if len(args) == 1 else value
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_json(tp, value)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(tp) or (Any,)
        return [_convert(item, v) for v in value]
    if origin is dict and isinstance(value, dict):
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return {k: _convert(item, v) for k, v in value.items()}
    return value


def from_json(cls: type[T], value: dict) -> T:
    if not isinstance(value, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(value).__name__}")
    field_types = hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: _convert(field_types[k], v) for k, v in value.items() if k in known})


def to_json(obj) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    return obj

"""JSON files of the job folder, written atomically: a temporary name, then a rename, so a crash
or a cancel never leaves a file that looks complete (both sides write some)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .atomic import replacing


def write_atomic(path: str | os.PathLike, data: Any) -> Path:
    text = json.dumps(data, indent=1)  # before the file is touched: data that does not encode changes nothing
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))

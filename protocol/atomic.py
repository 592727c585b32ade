"""Files written atomically: under a temporary name beside the target, then renamed over it, so a
crash, a failed write or a cancel never leaves a file that looks complete, nor the temporary one,
and an earlier file of that name stays as it was until the new one is whole (both sides write)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """The temporary path to write (``path`` + ``suffix``: keep the extension a writer reads the
    format from); it replaces ``path`` when the block ends, and is removed if the block raises."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

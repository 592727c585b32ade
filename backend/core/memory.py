"""The process's allocator, set for a reconstruct's large short-lived arrays.

A 2048² face tile makes and frees dozens of 16-48 MB arrays per photo. glibc's malloc serves
blocks that large from fresh ``mmap`` regions and unmaps them when freed, so every photo pays the
kernel's page faults and zeroing again; on this project's 2-core machine that cost swung with
the host's load: over 12 warm face tiles per process, medians of 0.70-0.83 s and single runs up
to 1.51 s. Served from the heap, and the freed heap kept for the next photo, the same runs took
0.59-0.68 s (medians), none over 0.78 s (processes alternating, measured; docs/benchmarks.md run
15). The cost: the backend process keeps its high-water memory (the bench process peaks at
~1.6 GB either way) instead of handing freed blocks back to the system between jobs.

Set once at the process's entry (``backend.service.cli.main``), never on import: a host process
that imports the backend as a library keeps its own allocator settings. ``FACEDET3D_MALLOC=default``
leaves glibc's defaults. Other C libraries (macOS, Windows, musl) are left as they are.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
# Larger than any array of a 4096² reconstruct (a 4096² RGB float32 image is 192 MB): all of
# them from the heap. The same for the freed memory kept at the heap's top.
HEAP_UP_TO = 1 << 30


def keep_freed_memory() -> bool:
    """Make glibc serve large blocks from the heap and keep freed heap memory; True when set."""
    if not sys.platform.startswith("linux") or os.environ.get("FACEDET3D_MALLOC") == "default":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # setting the trim threshold ends glibc's own adaptation of the mmap threshold: set both
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_UP_TO)) and bool(mallopt(M_TRIM_THRESHOLD, HEAP_UP_TO))

"""The backend process: JSON-RPC 2.0 over stdin/stdout, one JSON message per line.

    python -m backend.service.server        (cwd or PYTHONPATH: the folder holding ``backend/``)

Framing: every message is one line of UTF-8 JSON (the server writes ASCII: non-ASCII is
escaped) ending in ``\\n``; no message contains a raw newline. The client writes requests
and notifications to the server's stdin; the server writes responses and notifications to
its stdout. The real stdout is reserved for protocol messages: at startup the server moves
it to a private file descriptor and points ``sys.stdout`` *and* fd 1 at stderr (os.dup2), so
a stray ``print`` or a C library writing to fd 1 lands in the log, never in the channel;
fd 0 becomes /dev/null for the same reason. stderr is the human-readable log (the client
appends it to a log file).

Methods, parameters and error codes: :mod:`protocol.methods`, :mod:`protocol.rpc`; what each
method does: :mod:`backend.service.methods`; dispatch, threads and cancellation:
:mod:`backend.service.transport`. EOF on stdin (the client went away) cancels the running jobs
and exits cleanly.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import traceback
from typing import BinaryIO

from protocol import rpc

from .. import __version__
from .methods import CHECKS, TABLE
from .transport import Server, log


def _reserve_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Keep the real stdin/stdout for the protocol; fd 1 -> stderr, fd 0 -> /dev/null."""
    sys.stdout.flush()
    out_fd, in_fd = os.dup(1), os.dup(0)  # non-inheritable: children never see the channel
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115
    return os.fdopen(out_fd, "wb"), os.fdopen(in_fd, "rb")


def main() -> int:
    out, inp = _reserve_stdio()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s.%(msecs)03d backend[%(process)d] %(levelname)s %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    server = Server(out, TABLE, CHECKS)
    log.info("backend server %s ready: Python %s (%s), protocol %d", __version__, platform.python_version(),
             sys.executable, rpc.PROTOCOL_VERSION)
    reason = "stdin closed"
    try:
        for raw in iter(inp.readline, b""):
            try:
                server.handle_line(raw)
            except Exception:  # noqa: BLE001 - one bad message never stops the server
                log.error("unexpected error handling a message:\n%s", traceback.format_exc())
            if server.stopping:
                reason = "shutdown"
                break
    except KeyboardInterrupt:
        reason = "interrupted"
    clean = server.close(reason)
    log.info("backend server exits")
    sys.stderr.flush()
    if not clean:
        os._exit(0)  # a job stuck in C code: daemon threads would not stop a normal exit, but be sure
    return 0


if __name__ == "__main__":
    sys.exit(main())

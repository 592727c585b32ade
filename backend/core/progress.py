"""Progress reporting and cooperative cancellation shared by all stages."""

from __future__ import annotations

import threading
from typing import Callable, Optional

from .errors import CancelledError

ProgressFn = Callable[[float, str], None]


class Job:
    """What a stage gets to report progress and learn it was cancelled.

    ``report(fraction, message)`` maps the stage's own 0..1 onto the job's overall range
    set with :meth:`stage`; ``check()`` raises :class:`CancelledError` once cancelled.
    """

    def __init__(self, on_progress: Optional[ProgressFn] = None):
        self._on_progress = on_progress
        self._cancel = threading.Event()
        self._lo, self._hi = 0.0, 1.0

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise CancelledError()

    def stage(self, lo: float, hi: float) -> "Job":
        self._lo, self._hi = lo, hi
        return self

    def child(self, lo: float, hi: float) -> "Job":
        """A job for a nested stage: its whole 0..1 (and its own ``stage`` calls) maps onto
        lo..hi of this job's current stage; cancelling either cancels both."""
        lo_abs = self._lo + (self._hi - self._lo) * lo
        hi_abs = self._lo + (self._hi - self._lo) * hi
        sub = Job(None if self._on_progress is None else
                  (lambda f, m: self._on_progress(lo_abs + (hi_abs - lo_abs) * f, m)))
        sub._cancel = self._cancel
        return sub

    def report(self, fraction: float, message: str) -> None:
        self.check()
        if self._on_progress is not None:
            f = self._lo + (self._hi - self._lo) * min(max(fraction, 0.0), 1.0)
            self._on_progress(f, message)



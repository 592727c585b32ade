"""Temporal smoothing of tracked curves: the One Euro filter (Casiez, Roussel & Vogel, CHI 2012).

A first-order low-pass whose cut-off rises with the signal's speed: still faces lose their jitter
(the landmark network's frame-to-frame noise), fast expressions keep their timing. Written here
(twenty lines) rather than taken from the small ``OneEuroFilter`` package, to run it on every
control's array at once and forwards-backwards (no lag at all, the clip being offline).
"""

from __future__ import annotations

import numpy as np

# Defaults, measured on a 2 s rise and fall sampled at 24 fps with landmark-like noise (sd 0.03
# control units; tests/backend/test_capture.py): frame-to-frame jitter (mean |second difference|)
# falls to 0.22 of the raw curve's and the mean error to the truth to 0.47; (1.5 Hz, beta 3)
# gave 0.33 and 0.54, (2.5, 3) 0.39 and 0.59. Forwards-backwards, the timing is kept (no lag at
# any beta); a faster move only loses a little of its peak (the synthetic smile: 0.79 -> 0.77).
MIN_CUTOFF = 1.0
BETA = 1.0
D_CUTOFF = 1.0


def _alpha(cutoff, dt):
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(x: np.ndarray, times: np.ndarray, min_cutoff: float = MIN_CUTOFF, beta: float = BETA,
             d_cutoff: float = D_CUTOFF) -> np.ndarray:
    """Filter ``x`` (T, C) sampled at ``times`` (T,) one way."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    out[0] = x[0]
    dx = np.zeros(x.shape[1:])
    for i in range(1, len(x)):
        dt = max(float(times[i] - times[i - 1]), 1e-6)
        a_d = _alpha(d_cutoff, dt)
        dx = a_d * (x[i] - out[i - 1]) / dt + (1 - a_d) * dx
        a = _alpha(min_cutoff + beta * np.abs(dx), dt)
        out[i] = a * x[i] + (1 - a) * out[i - 1]
    return out


def zero_lag(x: np.ndarray, times: np.ndarray, **kw) -> np.ndarray:
    """The filter run forwards and backwards, averaged: its lag cancels (an offline clip)."""
    fwd = one_euro(x, times, **kw)
    bwd = one_euro(x[::-1], times[-1] - times[::-1], **kw)[::-1]
    return 0.5 * (fwd + bwd)

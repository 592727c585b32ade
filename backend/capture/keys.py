"""Key reduction: the fewest keys whose straight lines stay within a tolerance of a curve
(Ramer-Douglas-Peucker on the value axis), so a 30 fps capture does not land as 30 keys a second
on every control. The add-on keys them with linear interpolation, which is what the tolerance
is measured against."""

from __future__ import annotations

import numpy as np


def reduce_keys(t: np.ndarray, v: np.ndarray, tolerance: float) -> list[int]:
    """Indices of the kept samples (first and last always)."""
    t, v = np.asarray(t, np.float64), np.asarray(v, np.float64)
    n = len(t)
    if n <= 2:
        return list(range(n))
    keep = np.zeros(n, bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg = slice(a + 1, b)
        line = v[a] + (v[b] - v[a]) * (t[seg] - t[a]) / max(t[b] - t[a], 1e-12)
        dev = np.abs(v[seg] - line)
        k = int(np.argmax(dev))
        if dev[k] > tolerance:
            m = a + 1 + k
            keep[m] = True
            stack += [(a, m), (m, b)]
    return list(np.nonzero(keep)[0])


def max_error(t: np.ndarray, v: np.ndarray, idx: list[int]) -> float:
    """The largest distance between the curve and the kept keys' straight lines."""
    return float(np.abs(np.interp(t, np.asarray(t)[idx], np.asarray(v)[idx]) - v).max())

"""Bjøntegaard delta rate and delta quality (VCEG-M33), written for the gsvc RD benchmark.

bd_rate(anchor, test): the average rate difference (%) of `test` against `anchor` at equal quality.
Each curve is fitted with a polynomial (cubic when it has four or more points, lower otherwise) of
log(rate) as a function of quality; both fits are integrated over the quality interval the two
curves share, and the mean log-rate difference d over that interval gives (exp(d) - 1) * 100.
Negative means `test` needs fewer bits than `anchor` for the same quality.

bd_quality(anchor, test): the mirror image, quality as a polynomial of log(rate), integrated over the
shared log-rate interval: the average quality gain (dB for PSNR) of `test` at equal rate.

Both return None when the curves do not overlap (no shared interval) or have fewer than two
distinct points: there is then no honest number to give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Curve = Sequence[tuple[float, float]]  # (rate, quality) points, rate > 0, any order


def _clean(points: Curve) -> tuple[np.ndarray, np.ndarray]:
    """Finite points with rate > 0, as (log rate, quality), sorted by quality."""
    pts = [(float(r), float(q)) for r, q in points
           if r is not None and q is not None and math.isfinite(r) and math.isfinite(q) and r > 0]
    pts.sort(key=lambda p: (p[1], p[0]))
    log_rate = np.array([math.log(r) for r, _ in pts], dtype=np.float64)
    quality = np.array([q for _, q in pts], dtype=np.float64)
    return log_rate, quality


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the least-squares polynomial y(x) of degree min(3, distinct-1)."""
    degree = min(3, len(np.unique(x)) - 1)
    # Centre x for a well-conditioned fit; the integral does not depend on the shift.
    shift = float(np.mean(x))
    poly = np.polynomial.Polynomial.fit(x - shift, y, degree, domain=[-1, 1], window=[-1, 1])
    antideriv = poly.integ()
    return float(antideriv(hi - shift) - antideriv(lo - shift))


def _delta(x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray) -> float | None:
    """Mean of (y_b(x) - y_a(x)) over the shared x interval of two fitted curves."""
    if len(np.unique(x_a)) < 2 or len(np.unique(x_b)) < 2:
        return None
    lo = max(float(x_a.min()), float(x_b.min()))
    hi = min(float(x_a.max()), float(x_b.max()))
    if not hi > lo:
        return None
    return (_integral(x_b, y_b, lo, hi) - _integral(x_a, y_a, lo, hi)) / (hi - lo)


def bd_rate(anchor: Curve, test: Curve) -> float | None:
    """BD-rate (%) of `test` against `anchor`: negative = test saves rate at equal quality."""
    lr_a, q_a = _clean(anchor)
    lr_b, q_b = _clean(test)
    d = _delta(q_a, lr_a, q_b, lr_b)
    if d is None:
        return None
    return (math.exp(d) - 1.0) * 100.0


def bd_quality(anchor: Curve, test: Curve) -> float | None:
    """BD-PSNR (or BD of any quality figure) of `test` against `anchor`: positive = test better."""
    lr_a, q_a = _clean(anchor)
    lr_b, q_b = _clean(test)
    return _delta(lr_a, q_a, lr_b, q_b)


def overlap(anchor: Curve, test: Curve) -> tuple[float, float] | None:
    """The quality interval both curves cover (what bd_rate integrates over), or None."""
    _, q_a = _clean(anchor)
    _, q_b = _clean(test)
    if len(q_a) == 0 or len(q_b) == 0:
        return None
    lo, hi = max(q_a.min(), q_b.min()), min(q_a.max(), q_b.max())
    return (float(lo), float(hi)) if hi > lo else None

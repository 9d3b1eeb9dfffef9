"""The quantiser's steps and the integers -> floats map, without torch: all a decoder needs.

`quantise.py` (torch, the encoder's side) re-exports everything here and uses `dequantise_values`
for its own reconstruction, so encoder and decoder make the same floats from the same integers.

Why exp goes through float64: l1 = exp(q0 * step.log_scale) is the one transcendental function of
dequantisation, and float32 exp differs in the last bit between implementations (torch's SIMD exp
and numpy's disagree on 8% of float32 inputs; either disagrees with the correctly rounded value on
about 0.1%). Every caller therefore takes float32(math.exp(x)) with x = float32(q * log_scale):
exp in float64 from the C library (whatever the array's length or layout), one value per integer.
The argument stays the float32 product torch computed, so only the values where torch's float32 exp
was not correctly rounded change (last bit, about 1 in 1000 of the integers a file can hold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gsvc_cli.errors import FormatError, GsvcError

MIN_SCALE = 1.0 / 16.0
"""Smallest l1 or l3 (pixels) a quantised splat can have."""
MAX_SCALE = 4096.0
"""Largest l1 or l3 (pixels) a quantised splat can have."""
MAX_ABS_Q = (1 << 22) - 1
"""Every quantised integer lies in [-MAX_ABS_Q, MAX_ABS_Q]."""


def _f32(value: float) -> float:
    """The float32 nearest to `value`, as a Python float (what the file stores)."""
    return float(np.float32(value))


@dataclass(frozen=True)
class QuantSteps:
    """Step sizes of the uniform quantisers of one GOP (all values float32-exact, > 0).

    mean:      pixels, for x and y.
    log_scale: natural-log units, for ln(l1) and ln(l3) (0.0625 means about 6 % relative steps).
    shear:     dimensionless, for l2 / l3.
    color:     one step per colour channel, in the encoder's colour units (e.g. [0, 1] YUV or RGB).
    """

    mean: float
    log_scale: float
    shear: float
    color: tuple[float, float, float]

    def __post_init__(self) -> None:
        values = (self.mean, self.log_scale, self.shear, *self.color)
        if len(self.color) != 3:
            raise GsvcError(f"quantiser steps need 3 colour steps, got {len(self.color)}")
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise GsvcError(f"quantiser steps must be finite and positive, got {values}")
        object.__setattr__(self, "mean", _f32(self.mean))
        object.__setattr__(self, "log_scale", _f32(self.log_scale))
        object.__setattr__(self, "shear", _f32(self.shear))
        object.__setattr__(self, "color", tuple(_f32(c) for c in self.color))
        if not all(v > 0 for v in self.as_tuple()):
            raise GsvcError(f"quantiser steps underflow float32: {values}")

    @staticmethod
    def default() -> QuantSteps:
        """Medium quality: 1/8 px centres, ~6 % scales, 1/16 shear, 1/128 colour steps."""
        return QuantSteps(mean=1 / 8, log_scale=1 / 16, shear=1 / 16, color=(1 / 128, 1 / 128, 1 / 128))

    @staticmethod
    def from_quality(quality: float) -> QuantSteps:
        """Default steps times 2**-quality: +1 quality halves every step (about +1 bit per parameter)."""
        return QuantSteps.default().scaled(2.0 ** (-quality))

    def scaled(self, factor: float) -> QuantSteps:
        """Every step multiplied by `factor` (> 1 is coarser and cheaper)."""
        if not (math.isfinite(factor) and factor > 0):
            raise GsvcError(f"quantiser step factor must be finite and positive, got {factor}")
        return QuantSteps(
            mean=self.mean * factor,
            log_scale=self.log_scale * factor,
            shear=self.shear * factor,
            color=tuple(c * factor for c in self.color),  # type: ignore[arg-type]
        )

    def as_tuple(self) -> tuple[float, ...]:
        """(mean, log_scale, shear, color0, color1, color2): the order the I-frame record stores."""
        return (self.mean, self.log_scale, self.shear, *self.color)

    @staticmethod
    def from_tuple(values: tuple[float, ...] | list[float]) -> QuantSteps:
        """Inverse of `as_tuple`."""
        if len(values) != 6:
            raise GsvcError(f"quantiser steps need 6 values, got {len(values)}")
        return QuantSteps(values[0], values[1], values[2], (values[3], values[4], values[5]))


def scales_of(q: np.ndarray, log_scale: float) -> np.ndarray:
    """float32(exp(float32(q * log_scale))) of integer log-scales q (any shape): the argument rounded
    to float32 as before (torch computed it so), the exp in float64 by math.exp once per integer,
    so the same bits wherever and however it is called."""
    q = np.asarray(q, dtype=np.int64)
    if q.size == 0:
        return np.zeros(q.shape, dtype=np.float32)
    lo, hi = int(q.min()), int(q.max())
    if hi - lo <= _MAX_TABLE:  # a fitted frame's scales span a few hundred steps: a table of them
        return _exp_f32(np.arange(lo, hi + 1), log_scale)[q - lo]
    distinct, inverse = np.unique(q, return_inverse=True)
    return _exp_f32(distinct, log_scale)[inverse].reshape(q.shape)


def _exp_f32(q: np.ndarray, log_scale: float) -> np.ndarray:
    arguments = q.astype(np.float32) * np.float32(log_scale)  # float32 product, as torch made it
    exact = np.array([_exp_or_inf(float(x)) for x in arguments], dtype=np.float64)
    with np.errstate(over="ignore"):  # beyond float32 is inf, as torch gave (corrupt files only)
        return exact.astype(np.float32)


_MAX_TABLE = 1 << 12


def _exp_or_inf(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:  # only for integers no encoder writes (they are clamped to MAX_SCALE)
        return math.inf


def dequantise_values(values: np.ndarray, steps: QuantSteps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, 8] integers (x, y, l1, shear, l3, c0, c1, c2: the coding order) -> contiguous float32
    means [N, 2] (pixels), chol [N, 3] (l1, l2, l3 in pixels) and colors [N, 3].

    float32 arithmetic in a fixed order, as torch did it: mean = q * step, l2 = (q_shear * step) * l3,
    colour = q * step_k; l1 and l3 from `scales_of`.
    """
    values = np.asarray(values)
    q = values.astype(np.float32)
    means = np.ascontiguousarray(q[:, 0:2] * np.float32(steps.mean))
    l1 = scales_of(values[:, 2], steps.log_scale)
    l3 = scales_of(values[:, 4], steps.log_scale)
    if not (np.isfinite(l1).all() and np.isfinite(l3).all()):  # inf x a zero shear would be NaN
        raise FormatError("corrupt splat data: a splat scale beyond any the encoder writes")
    l2 = (q[:, 3] * np.float32(steps.shear)) * l3
    chol = np.stack([l1, l2, l3], axis=1)
    colors = np.ascontiguousarray(q[:, 5:8] * np.asarray(steps.color, dtype=np.float32))
    return means, chol, colors

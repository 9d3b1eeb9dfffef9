"""Uniform scalar quantisation of splats: floats <-> the integers the bitstream carries.

Every splat parameter is mapped to a "coding domain" and rounded to a multiple of a step:

    means  (x, y) px        q = round(mean / step.mean)                              [N, 2]
    chol   (l1, l2, l3) px  canonical signs l1 > 0, l3 > 0 (Sigma = L L^T unchanged), then
                            q0 = round(ln(l1) / step.log_scale)
                            q1 = round((l2 / l3) / step.shear)      (a dimensionless shear)
                            q2 = round(ln(l3) / step.log_scale)                      [N, 3]
    colors (c0, c1, c2)     q = round(c / step.color[k])                             [N, 3]

Why log-scales and a relative shear: the error a step causes is then proportional to the splat's
size, and a dequantised factor always has l1, l3 > 0, so no covariance can become degenerate.
l1 and l3 are clamped to [MIN_SCALE, MAX_SCALE] pixels before the logarithm; all integers are
clamped to [-MAX_ABS_Q, MAX_ABS_Q]. Only the integers travel; P-frames code differences of them,
so prediction is exact (closed loop) whatever floats `dequantise` produces.

Step sizes are chosen per GOP (they travel in the I-frame record, docs/FORMAT.md). They are stored
as float32, and `QuantSteps` rounds every step to float32 on construction so the encoder's own
reconstruction uses exactly the numbers the decoder will read. The rate controller turns one knob:
`QuantSteps.default().scaled(f)` multiplies every step by f (f = 2: every parameter about one bit
cheaper and twice as coarse); `QuantSteps.from_quality(q)` is the same with f = 2**-q.

`fake_quantise` is the straight-through version for quantisation-aware fitting: the forward value is
exactly `dequantise(quantise(s))`, the gradient passes through the rounding as if it were identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gsvc_cli.codec.bitstream.dequant import (  # noqa: F401 - re-exported: the encoder's names
    MAX_ABS_Q,
    MAX_SCALE,
    MIN_SCALE,
    QuantSteps,
    dequantise_values,
    scales_of,
)
from gsvc_cli.codec.splats import SplatArrays, Splats, check_splat_shapes
from gsvc_cli.errors import GsvcError


@dataclass
class QuantisedSplats(SplatArrays):
    """The integers of N quantised splats (what frame records carry).

    means:  [N, 2] int32, round(x / step.mean), round(y / step.mean).
    chol:   [N, 3] int32, round(ln l1 / step.log_scale), round((l2/l3) / step.shear),
            round(ln l3 / step.log_scale).
    colors: [N, 3] int32, round(c_k / step.color[k]).
    """

    DTYPE = torch.int32
    means: torch.Tensor
    chol: torch.Tensor
    colors: torch.Tensor

    def __post_init__(self) -> None:
        check_splat_shapes(self.means, self.chol, self.colors, "quantised splat")
        for t in (self.means, self.chol, self.colors):
            if t.dtype != torch.int32:
                raise ValueError(f"quantised splats must be int32, got {t.dtype}")

    def as_array(self) -> np.ndarray:
        """[N, 8] int64 numpy array: x, y, l1, shear, l3, c0, c1, c2 (the coding order)."""
        return torch.cat([self.means, self.chol, self.colors], dim=1).cpu().numpy().astype(np.int64)

    @staticmethod
    def from_array(values: np.ndarray) -> QuantisedSplats:
        """Inverse of `as_array` ([N, 8] integers)."""
        t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.int32).reshape(-1, 8))
        return QuantisedSplats(t[:, 0:2].clone(), t[:, 2:5].clone(), t[:, 5:8].clone())

    def equal(self, other: QuantisedSplats) -> bool:
        """True when both hold exactly the same integers in the same order."""
        return (
            len(self) == len(other)
            and torch.equal(self.means, other.means)
            and torch.equal(self.chol, other.chol)
            and torch.equal(self.colors, other.colors)
        )


def _coding_domain(splats: Splats, steps: QuantSteps) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Means, chol and colours divided by their steps, in the coding domain, before rounding (float)."""
    means = splats.means / steps.mean
    l1, l2, l3 = splats.chol.unbind(dim=1)
    sign1 = torch.where(l1 < 0, -1.0, 1.0).to(l1.dtype)
    sign3 = torch.where(l3 < 0, -1.0, 1.0).to(l3.dtype)
    a1 = (l1 * sign1).clamp(MIN_SCALE, MAX_SCALE)
    a3 = (l3 * sign3).clamp(MIN_SCALE, MAX_SCALE)
    # Flipping the sign of column 1 of L (l1, l2) or of column 2 (l3) leaves Sigma = L L^T unchanged.
    shear = l2 * sign1 / a3
    chol = torch.stack([a1.log() / steps.log_scale, shear / steps.shear, a3.log() / steps.log_scale], 1)
    color_steps = torch.tensor(steps.color, dtype=splats.colors.dtype, device=splats.colors.device)
    colors = splats.colors / color_steps
    return means, chol, colors


def _from_coding_domain(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor,
                        steps: QuantSteps) -> Splats:
    """Inverse of `_coding_domain` on rounded float values (integers, as `fake_quantise` makes
    them); the same floats as `dequantise_values`, differentiable."""
    l1 = _scale(chol[:, 0], steps.log_scale)
    l3 = _scale(chol[:, 2], steps.log_scale)
    l2 = chol[:, 1] * steps.shear * l3
    color_steps = torch.tensor(steps.color, dtype=colors.dtype, device=colors.device)
    return Splats(means * steps.mean, torch.stack([l1, l2, l3], dim=1), colors * color_steps)


def _scale(q: torch.Tensor, log_scale: float) -> torch.Tensor:
    """exp(q * log_scale) of integer-valued q: the value of `scales_of` (what the decoder computes),
    the gradient of torch.exp (straight through: value + (e - e) adds exactly zero)."""
    integers = np.rint(q.detach().to("cpu", torch.float64).numpy()).astype(np.int64)
    exact = torch.from_numpy(scales_of(integers, log_scale)).to(q.device, q.dtype)
    if not q.requires_grad:
        return exact
    e = torch.exp(q * log_scale)
    return exact + (e - e.detach())


def _round_clamped(values: torch.Tensor) -> torch.Tensor:
    return torch.round(values).clamp(-MAX_ABS_Q, MAX_ABS_Q)


def quantise(splats: Splats, steps: QuantSteps) -> QuantisedSplats:
    """Splats (float, pixels) -> their integers under `steps` (round half to even, clamped).

    Raises GsvcError on non-finite parameters (a fitting bug that must not reach a file).
    """
    splats = splats.detach().to("cpu")
    for name, t in (("means", splats.means), ("chol", splats.chol), ("colors", splats.colors)):
        if not torch.isfinite(t).all():
            raise GsvcError(f"cannot quantise splats: non-finite values in {name}")
    means, chol, colors = _coding_domain(Splats(splats.means.double(), splats.chol.double(),
                                                splats.colors.double()), steps)
    return QuantisedSplats(
        _round_clamped(means).to(torch.int32),
        _round_clamped(chol).to(torch.int32),
        _round_clamped(colors).to(torch.int32),
    )


def dequantise(q: QuantisedSplats, steps: QuantSteps, device: torch.device | str = "cpu") -> Splats:
    """Integers -> float32 splats (pixels); always l1, l3 in [MIN_SCALE, MAX_SCALE] (about).
    The very floats the torch-free decoder makes (`dequantise_values`)."""
    means, chol, colors = dequantise_values(q.as_array(), steps)
    return Splats(torch.from_numpy(means).to(device), torch.from_numpy(chol).to(device),
                  torch.from_numpy(colors).to(device))


def fake_quantise(splats: Splats, steps: QuantSteps) -> Splats:
    """Straight-through quantisation for autograd: forward = dequantise(quantise(splats)).

    Gradients flow to `splats` as if rounding were the identity (the coding-domain transform and
    its inverse are differentiated normally). Shapes and units as in `Splats`.
    """
    dtype = splats.means.dtype
    # The coding domain is computed in float64, as `quantise` does, so both round identically.
    means, chol, colors = _coding_domain(
        Splats(splats.means.double(), splats.chol.double(), splats.colors.double()), steps)

    def straight_through(x: torch.Tensor) -> torch.Tensor:
        return (x + (_round_clamped(x.detach()) - x.detach())).to(dtype)

    return _from_coding_domain(straight_through(means), straight_through(chol),
                               straight_through(colors), steps)

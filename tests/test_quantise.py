"""Quantisation: error bounds, integer dtype, canonical Cholesky signs, straight-through gradients."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import realistic_splats

from gsvc_cli.codec.bitstream.quantise import (
    MIN_SCALE,
    QuantisedSplats,
    QuantSteps,
    dequantise,
    fake_quantise,
    quantise,
)
from gsvc_cli.codec.splats import Splats
from gsvc_cli.errors import GsvcError


def covariance(chol: torch.Tensor) -> torch.Tensor:
    l1, l2, l3 = chol.double().unbind(1)
    return torch.stack([l1 * l1, l1 * l2, l1 * l2, l2 * l2 + l3 * l3], 1).reshape(-1, 2, 2)


def test_round_trip_error_bounds():
    steps = QuantSteps.default()
    s = realistic_splats(5000, 320, 240, 0, wide_colours=True)
    q = quantise(s, steps)
    assert all(t.dtype == torch.int32 for t in (q.means, q.chol, q.colors))
    d = dequantise(q, steps)
    assert (d.means - s.means).abs().max() <= steps.mean / 2 + 1e-4
    for k in range(3):
        assert (d.colors[:, k] - s.colors[:, k]).abs().max() <= steps.color[k] / 2 + 1e-5
    # log-scales: relative error of l1 and l3 at most exp(step / 2) - 1
    for col in (0, 2):
        rel = (d.chol[:, col] / s.chol[:, col]).log().abs().max()
        assert rel <= steps.log_scale / 2 + 1e-5
    # shear l2 / l3 within half a step (plus the l3 rounding it rides on)
    shear_err = (d.chol[:, 1] / d.chol[:, 2] - s.chol[:, 1] / s.chol[:, 2]).abs().max()
    assert shear_err <= steps.shear / 2 + 1e-5


def test_requantising_is_exact():
    steps = QuantSteps.from_quality(1.0)
    q = quantise(realistic_splats(2000, 64, 48, 1, wide_colours=True), steps)
    assert quantise(dequantise(q, steps), steps).equal(q)


def test_sign_flips_keep_covariance_and_never_degenerate():
    steps = QuantSteps.default()
    s = realistic_splats(1000, 64, 48, 2, wide_colours=True)
    flipped = Splats(s.means, s.chol * torch.tensor([-1.0, -1.0, -1.0]), s.colors)
    assert quantise(flipped, steps).equal(quantise(s, steps))
    tiny = Splats(s.means[:3], torch.tensor([[0.0, 0.0, 0.0], [1e-9, 5.0, -1e-9], [-2.0, 0.1, 3.0]]),
                  s.colors[:3])
    d = dequantise(quantise(tiny, steps), steps)
    assert (d.chol[:, 0] >= MIN_SCALE * 0.99).all() and (d.chol[:, 2] >= MIN_SCALE * 0.99).all()
    assert (torch.linalg.det(covariance(d.chol)) > 0).all()
    rel = (covariance(dequantise(quantise(s, steps), steps).chol) - covariance(s.chol)).abs()
    assert (rel / covariance(s.chol).abs().amax(dim=(1, 2), keepdim=True)).max() < 0.15


def test_fake_quantise_forward_equals_dequantise_and_gradients_flow():
    steps = QuantSteps.default()
    s = realistic_splats(500, 64, 48, 3, wide_colours=True)
    leaves = [t.clone().requires_grad_() for t in (s.means, s.chol, s.colors)]
    out = fake_quantise(Splats(*leaves), steps)
    ref = dequantise(quantise(s, steps), steps)
    assert torch.equal(out.means, ref.means) and torch.equal(out.colors, ref.colors)
    assert torch.equal(out.chol, ref.chol)
    (out.means.sum() + out.chol.sum() + out.colors.sum()).backward()
    assert torch.allclose(leaves[0].grad, torch.ones_like(s.means))
    assert torch.allclose(leaves[2].grad, torch.ones_like(s.colors))
    # straight through the rounding: d l_out / d l is about 1 (exactly 1 only without rounding)
    assert ((leaves[1].grad - 1).abs() < 0.1).float().mean() > 0.95


def test_steps_are_float32_exact_and_scale_with_quality():
    a = QuantSteps.from_quality(0.0)
    b = QuantSteps.from_quality(1.0)
    assert b.mean == pytest.approx(a.mean / 2) and b.color[1] == pytest.approx(a.color[1] / 2)
    odd = QuantSteps(0.1, 0.1, 0.1, (0.1, 0.2, 0.3))
    assert odd.mean != 0.1 and abs(odd.mean - 0.1) < 1e-8  # rounded to float32 on purpose
    assert QuantSteps.from_tuple(odd.as_tuple()) == odd
    with pytest.raises(GsvcError):
        QuantSteps(0.0, 1.0, 1.0, (1.0, 1.0, 1.0))
    with pytest.raises(GsvcError):
        a.scaled(math.nan)


def test_non_finite_splats_refused():
    s = realistic_splats(10, 64, 48, 4, wide_colours=True)
    s.colors[3, 1] = float("nan")
    with pytest.raises(GsvcError, match="non-finite"):
        quantise(s, QuantSteps.default())


def test_quantised_splats_array_round_trip():
    q = quantise(realistic_splats(100, 64, 48, 5, wide_colours=True), QuantSteps.default())
    assert QuantisedSplats.from_array(q.as_array()).equal(q)


def test_scales_are_float32_of_a_float64_exp_whatever_the_array():
    """Encoder and decoder make l1, l3 with `scales_of`: the same bits for an integer whether it
    comes alone, in a small range (a table) or among far-apart values (one per distinct value)."""
    import math

    import numpy as np

    from gsvc_cli.codec.bitstream.dequant import scales_of

    q = np.arange(-60, 150)
    expected = np.array([math.exp(float(np.float32(v) * np.float32(0.0625))) for v in q]).astype(np.float32)
    assert np.array_equal(scales_of(q, 0.0625), expected)
    assert np.array_equal(scales_of(np.append(q, 1 << 20), 0.0625)[:-1], expected)
    assert all(scales_of(q[i:i + 1], 0.0625)[0] == expected[i] for i in range(0, len(q), 17))


def test_scales_beyond_float32_are_inf_without_a_warning():
    """A corrupt file's huge log-scale gives inf quietly (the decoder reports errors, numpy must not
    print a RuntimeWarning on the way): exp(1500 * 0.0625) fits a float64, not a float32."""
    import warnings

    import numpy as np

    from gsvc_cli.codec.bitstream.dequant import scales_of

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scales = scales_of(np.array([0, 1500, 1 << 20]), 0.0625)
    assert scales[0] == 1.0 and np.isinf(scales[1]) and np.isinf(scales[2])

"""P-frame fitting (gsvc_cli/codec/encoder/inter_fit.py) on real content from tests/data: the global
shift estimate, the warm start from the previous decoded splats, and fit_inter's contract (which rows
may change, which keep their integers, what the reported PSNR means)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import KODIM23, load_rgb

from gsvc_cli.codec.bitstream.quantise import dequantise
from gsvc_cli.codec.encoder.inter_fit import SHIFT_GAIN_DB, estimate_shift, fit_inter, warm_start
from gsvc_cli.codec.encoder.loss import loss_weights, weighted_psnr
from gsvc_cli.render import render
from gsvc_cli.render.reference import render_reference

SUBSAMPLE = 4  # a shift of k pixels before 4x4 area averaging is a shift of k/4 pixels after it


def _camera(grey: torch.Tensor, sx: int, sy: int, height: int, width: int) -> torch.Tensor:
    """What a camera with 4x4-pixel sensor cells sees of `grey` when the scene moves by (sx, sy)/4 of
    its pixels: the fine image shifted by whole fine pixels, then area-averaged. moved(p) = ref(p - d)
    exactly (up to the crop), with d = (sx, sy) / 4 a true sub-pixel shift of real content."""
    m = 2 * SUBSAMPLE  # margin for shifts up to 8 fine pixels
    part = grey[m - sy:m - sy + SUBSAMPLE * height, m - sx:m - sx + SUBSAMPLE * width]
    return F.avg_pool2d(part[None, None], SUBSAMPLE)[0, 0]


def test_global_shift_is_found():
    """Phase correlation recovers known sub-pixel shifts (quarter pixels) of a real photo.

    The parabolic peak refinement is biased toward whole pixels (about 0.1-0.15 px at quarter-pixel
    shifts on this content), so the bound is 0.2 px per axis, 0.12 px on average; the estimate must
    also beat the nearest whole-pixel answer whenever the shift is not whole."""
    grey = load_rgb(KODIM23).mean(0)  # 192x256 real photo -> 40x56 after averaging
    reference = _camera(grey, 0, 0, 40, 56)
    errors = []
    for sx, sy in [(5, -3), (2, 7), (-6, -7), (1, 0), (-3, 2)]:
        dx, dy = estimate_shift(reference, _camera(grey, sx, sy, 40, 56))
        for estimate, true in ((dx, sx / SUBSAMPLE), (dy, sy / SUBSAMPLE)):
            error = abs(estimate - true)
            errors.append(error)
            assert error <= 0.2, (sx, sy, dx, dy)
            if true != round(true):
                assert error < abs(round(true) - true) or error < 0.15, (sx, sy, dx, dy)
    assert sum(errors) / len(errors) <= 0.12


def test_warm_start_follows_a_pan(pan_reference):
    """Frame 1 of the pan: one global shift for every splat, about the pan's motion, and it pays."""
    images, q, steps, weights = pan_reference
    image = images[1]
    warm = warm_start(image, q, steps, weights)
    # The source frames themselves move by about (-9, -2); the warm start measures the shift from the
    # render of a rough 150-splat fit (about 21 dB), so it may be off by a fraction of a pixel.
    truth = estimate_shift(images[0][0], image[0])
    assert abs(warm.shift[0] - truth[0]) < 1.0 and abs(warm.shift[1] - truth[1]) < 1.0
    assert warm.psnr >= warm.unshifted_psnr + SHIFT_GAIN_DB
    # The shift moves every centre by the same whole number of quantiser steps, and nothing else.
    delta = torch.tensor([round(warm.shift[0] / steps.mean), round(warm.shift[1] / steps.mean)],
                         dtype=torch.int32)
    assert torch.equal(warm.base.means, q.means + delta)
    assert torch.equal(warm.base.chol, q.chol) and torch.equal(warm.base.colors, q.colors)
    _check_warm_start_fields(warm, image, steps, weights)


def test_warm_start_keeps_still_content_in_place(pan_reference):
    """The frame the splats were fitted to: no shift, the previous integers untouched."""
    images, q, steps, weights = pan_reference
    warm = warm_start(images[0], q, steps, weights)
    assert warm.shift == (0.0, 0.0)
    assert warm.base.equal(q)
    assert warm.psnr == warm.unshifted_psnr
    assert warm.psnr > 20.0  # the fit is real: far above a flat picture (about 12 dB here)
    _check_warm_start_fields(warm, images[0], steps, weights)


def _check_warm_start_fields(warm, image: torch.Tensor, steps, weights) -> None:
    """splats, rendered, wt_residual and psnr mean what WarmStart says, recomputed independently
    (the dense torch reference renderer and its autograd)."""
    _, height, width = image.shape
    splats = dequantise(warm.base, steps)
    assert torch.equal(warm.splats.means, splats.means) and torch.equal(warm.splats.colors, splats.colors)
    colours = splats.colors.clone().requires_grad_(True)
    dense = render_reference(splats.means, splats.chol, colours, height, width)
    # d/dcolours of half the summed squared error is W^T (render - image)
    (0.5 * (dense - image).square().sum()).backward()
    assert float((warm.rendered - dense.detach()).abs().max()) < 1e-4
    assert float((warm.wt_residual - colours.grad).abs().max()) <= 1e-4 * float(colours.grad.abs().max())
    expected = weighted_psnr(dense.detach().clamp(0, 1), image, loss_weights(weights, image.device))
    assert warm.psnr == pytest.approx(expected, abs=1e-3)


@pytest.fixture(scope="module")
def pan_p_frame(pan_reference):
    """fit_inter on frame 1 of the pan: 8 of 150 splats pruned, 12 added, a quarter of the survivors
    allowed to change, 15 steps."""
    images, q, steps, weights = pan_reference
    warm = warm_start(images[1], q, steps, weights)
    result = fit_inter(images[1], warm, steps, n_add=12, n_prune=8, active_fraction=0.25, iterations=15,
                       channel_weights=weights, seed=0)
    return warm, result


def test_fit_inter_keeps_the_order_contract(pan_reference, pan_p_frame):
    _, q, _, _ = pan_reference
    warm, result = pan_p_frame
    n_kept = len(q) - 8
    assert len(result.q) == n_kept + 12 == len(result.active) == len(result.priority)
    kept = result.kept
    assert kept.dtype == torch.long and len(kept) == n_kept
    assert bool((kept[1:] > kept[:-1]).all()) and int(kept[0]) >= 0 and int(kept[-1]) < len(q)
    assert result.base is warm.base
    # New splats are always active; exactly a quarter of the survivors are.
    assert bool(result.active[n_kept:].all())
    assert int(result.active[:n_kept].sum()) == round(0.25 * n_kept)
    # The active survivors are the most sensitive ones.
    priority = result.priority[:n_kept]
    active = result.active[:n_kept]
    assert float(priority[active].min()) >= float(priority[~active].max())
    assert bool(torch.isinf(result.priority[n_kept:]).all())


def test_fit_inter_frozen_rows_keep_their_integers_and_active_rows_move(pan_p_frame):
    warm, result = pan_p_frame
    n_kept = len(result.kept)
    frozen = ~result.active[:n_kept]
    base = warm.base.select(result.kept)
    for now, before in ((result.q.means, base.means), (result.q.chol, base.chol),
                        (result.q.colors, base.colors)):
        assert torch.equal(now[:n_kept][frozen], before[frozen])
    # ...and the fit did change active survivors (otherwise the contract above would be vacuous).
    active = result.active[:n_kept]
    changed = ((result.q.means[:n_kept] != base.means).any(1)
               | (result.q.colors[:n_kept] != base.colors).any(1))
    assert int(changed[active].sum()) >= int(active.sum()) // 2


def test_fit_inter_reports_the_psnr_of_what_it_returns_and_improves_on_the_warm_start(pan_reference,
                                                                                    pan_p_frame):
    images, _, steps, weights = pan_reference
    warm, result = pan_p_frame
    decoded = dequantise(result.q, steps)
    out = render(decoded.means, decoded.chol, decoded.colors, 64, 96).clamp(0, 1)
    expected = weighted_psnr(out, images[1], loss_weights(weights, out.device))
    assert result.psnr == pytest.approx(expected, abs=1e-6)
    assert result.psnr > warm.psnr + 1.0  # about +3 dB here


def test_fit_inter_with_nothing_to_change_returns_the_warm_start(pan_reference):
    images, q, steps, weights = pan_reference
    warm = warm_start(images[1], q, steps, weights)
    result = fit_inter(images[1], warm, steps, n_add=0, n_prune=0, active_fraction=0.0, iterations=5,
                       channel_weights=weights)
    assert result.q.equal(warm.base)
    assert torch.equal(result.kept, torch.arange(len(q)))
    assert not result.active.any()
    assert result.psnr == pytest.approx(warm.psnr, abs=1e-4)


def test_fit_inter_is_deterministic(pan_reference, pan_p_frame):
    images, _, steps, weights = pan_reference
    warm, result = pan_p_frame
    again = fit_inter(images[1], warm, steps, n_add=12, n_prune=8, active_fraction=0.25, iterations=15,
                      channel_weights=weights, seed=0)
    assert again.q.equal(result.q) and torch.equal(again.kept, result.kept)

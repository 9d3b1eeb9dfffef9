"""Fit a P-frame: change few splats, and only where it pays.

A P-frame is coded as differences from the previous *decoded* splats, so every splat the fit nudges
costs bits, however small the nudge. The generic fitter moves all of them; here only an *active*
set may change:
- the least useful previous splats are pruned (by the loss increase their removal would cause),
- new splats are placed where the residual error is largest,
- among the survivors, the ones whose parameters the loss is most sensitive to (gradient times
  quantiser step: the first-order gain of moving one step) become active, the rest keep their exact
  previous integers and cost a fraction of a bit each,
- active splats are fitted with straight-through quantisation, then their colours are refitted in
  closed form against what the frozen splats leave unexplained.
The count of new and active splats is the rate controller's knob.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gsvc_cli.codec.bitstream.frame_coding import motion_field_bits
from gsvc_cli.codec.bitstream.motion_vectors import MAX_CELL, MAX_VECTOR, MotionVectors
from gsvc_cli.codec.bitstream.quantise import QuantisedSplats, QuantSteps, dequantise, fake_quantise, quantise
from gsvc_cli.codec.encoder.colour_refit import refit_colours
from gsvc_cli.codec.encoder.densify import colour_gradient, prune_and_place
from gsvc_cli.codec.encoder.loss import loss_weights, weighted_mse, weighted_psnr
from gsvc_cli.codec.encoder.motion import block_motion, smoothed
from gsvc_cli.codec.encoder.presets import INTER_LRS
from gsvc_cli.codec.splats import Splats
from gsvc_cli.render import render

MIN_GLOBAL_SHIFT = 0.3  # pixels; below this, global motion is not worth coding
SHIFT_GAIN_DB = 1.0  # a global shift must improve the warm start by this much
MOTION_BLOCK = 16  # pixels; block size of the local motion search
CONTINUE_WINDOW = 10  # P-fit steps between checks of whether more steps still pay
CONTINUE_GAIN = 0.005  # ... they do while the loss falls by 0.5% per window


@dataclass
class WarmStart:
    """The previous frame's decoded splats laid on this frame, before any fitting.

    base: the previous integers moved by `vectors` (the motion field the P-frame carries, None for
    none): what a frozen or reverted splat carries, at no cost for its centre; splats: their
    floats; rendered [3,H,W] and wt_residual [N,3] = W^T (render - image); psnr: their PSNR on
    this frame (channel-weighted, after the motion); unshifted_psnr: the same without it; shift:
    the global motion in pixels (x, y), (0, 0) when none was kept.
    The encoder decides scene cuts from this alone, before paying for a fit."""

    base: QuantisedSplats
    splats: Splats
    rendered: torch.Tensor
    wt_residual: torch.Tensor
    psnr: float
    unshifted_psnr: float
    shift: tuple[float, float] = (0.0, 0.0)
    motion: str = "none"  # "none", "global" (one shift) or "local" (block motion per splat)
    vectors: MotionVectors | None = None


@dataclass
class InterResult:
    """The fitted P-frame: integers in the order contract (survivors in previous order, then new),
    `kept` [K] increasing indices into the previous frame, the active mask over those rows, the
    per-row priority (higher = more worth keeping active) and the PSNR of the quantised render.
    base: the warm start's integers, what a frozen or reverted splat carries; vectors: the motion
    field that predicts them (the P-frame must carry it)."""

    q: QuantisedSplats
    kept: torch.Tensor
    active: torch.Tensor
    priority: torch.Tensor
    psnr: float
    base: QuantisedSplats
    vectors: MotionVectors | None = None


def estimate_shift(reference: torch.Tensor, image: torch.Tensor) -> tuple[float, float]:
    """Global translation (dx, dy) in pixels that maps `reference` [H,W] onto `image` [H,W]
    (image(p) ~ reference(p - d)), by phase correlation with a Hann window and a parabolic
    sub-pixel peak. Pans and camera shake become one shift for all splats."""
    height, width = image.shape
    window = (torch.hann_window(height, periodic=False, device=image.device)[:, None]
              * torch.hann_window(width, periodic=False, device=image.device)[None, :])
    a = torch.fft.rfft2((reference - reference.mean()) * window)
    b = torch.fft.rfft2((image - image.mean()) * window)
    cross = b * a.conj()
    corr = torch.fft.irfft2(cross / cross.abs().clamp(min=1e-12), s=(height, width))
    peak = int(torch.argmax(corr))
    py, px = divmod(peak, width)

    def refine(left: float, centre: float, right: float) -> float:
        denom = left - 2 * centre + right
        return 0.0 if denom >= 0 else 0.5 * (left - right) / denom

    centre = float(corr[py, px])
    dy = py + refine(float(corr[(py - 1) % height, px]), centre, float(corr[(py + 1) % height, px]))
    dx = px + refine(float(corr[py, (px - 1) % width]), centre, float(corr[py, (px + 1) % width]))
    if dy > height / 2:
        dy -= height
    if dx > width / 2:
        dx -= width
    return dx, dy


def _moved(q: QuantisedSplats, vectors: MotionVectors) -> QuantisedSplats:
    """q with every centre moved by the field, exactly as the decoder predicts it."""
    return QuantisedSplats.from_array(vectors.predict(q.as_array()))


def _global_vectors(shift: tuple[float, float], steps: QuantSteps) -> MotionVectors:
    dx, dy = (max(-MAX_VECTOR, min(MAX_VECTOR, round(v / steps.mean))) for v in shift)
    return MotionVectors.shift(dx, dy)


def field_vectors(vectors: torch.Tensor, spacing: int, steps: QuantSteps,
                  smoothing: int = 1) -> MotionVectors:
    """The field a P-frame carries for block motion [gh, gw, 2] (pixels, tiles of `spacing`
    pixels): smoothed (`motion.smoothed`, `smoothing` times), in centre-quantiser units."""
    for _ in range(smoothing):
        vectors = smoothed(vectors)
    units = torch.round(vectors / steps.mean).clamp(-MAX_VECTOR, MAX_VECTOR)
    cell = max(1, min(MAX_CELL, round(spacing / steps.mean)))
    return MotionVectors(units.to(torch.int64).cpu().numpy(), cell)


def _sensitivity(splats: Splats, image: torch.Tensor, weights: torch.Tensor, steps: QuantSteps
                 ) -> torch.Tensor:
    """Per splat: |dLoss/dparam| x step summed over its 8 parameters (first-order gain of a step)."""
    params = [t.detach().clone().requires_grad_(True) for t in (splats.means, splats.chol, splats.colors)]
    with torch.enable_grad():
        out = render(*params, image.shape[1], image.shape[2])
        loss = weighted_mse(out, image, weights)
        grads = torch.autograd.grad(loss, params)
    scale = splats.chol[:, [0, 2]].abs().mean(1, keepdim=True)  # log-scale steps act relative to size
    colour_steps = torch.tensor(steps.color, device=image.device)
    return ((grads[0].abs() * steps.mean).sum(1) + (grads[1].abs() * scale * steps.log_scale).sum(1)
            + (grads[2].abs() * colour_steps).sum(1))


def warm_start(image: torch.Tensor, prev_q: QuantisedSplats, steps: QuantSteps,
               channel_weights: tuple[float, float, float], local_motion: bool = False,
               min_gain_db: float = SHIFT_GAIN_DB, lam: float | None = None,
               motion_reference: torch.Tensor | None = None, smoothing: int = 1) -> WarmStart:
    """Lay the previous decoded integers `prev_q` on `image` [3,H,W], moved by one global shift
    (pans, camera shake) and then, with local_motion, by the block motion at each centre
    (motion.py), each kept when it beats the best so far: with `lam`, when the weighted squared
    error it removes exceeds lam times the bits of its motion field (the P-frame carries the
    field; centres that follow it cost nothing more); without, when it gains min_gain_db.
    motion_reference: the luma [H,W] motion is measured from (the previous source frame: its
    motion is the scene's, where the smooth render of the splats matches the sharp frame poorly;
    bench/warm_start.py); None: the render of the previous splats. smoothing: passes of
    `motion.smoothed` over the block field."""
    weights = loss_weights(channel_weights, image.device)
    pixels = image.shape[1] * image.shape[2]
    prev = dequantise(prev_q, steps, image.device)
    rendered, wt_r = colour_gradient(prev, image)
    unshifted = weighted_psnr(rendered.clamp(0, 1), image, weights)
    warm = WarmStart(prev_q, prev, rendered, wt_r, unshifted, unshifted)
    best_cost = 10.0 ** (-unshifted / 10.0) * pixels

    def consider(vectors: MotionVectors, motion: str, shift: tuple[float, float]) -> None:
        nonlocal warm, best_cost
        moved_q = _moved(prev_q, vectors)
        moved = dequantise(moved_q, steps, image.device)
        moved_render, moved_wt_r = colour_gradient(moved, image)
        moved_psnr = weighted_psnr(moved_render.clamp(0, 1), image, weights)
        if lam is None:
            better, cost = moved_psnr > warm.psnr + min_gain_db, 0.0
        else:
            cost = 10.0 ** (-moved_psnr / 10.0) * pixels + lam * motion_field_bits(vectors)
            better = cost < best_cost
        if better:
            warm = WarmStart(moved_q, moved, moved_render, moved_wt_r, moved_psnr, unshifted, shift, motion,
                             vectors)
            best_cost = cost

    source = rendered[0] if motion_reference is None else motion_reference
    if len(prev):
        dx, dy = estimate_shift(source, image[0])
        if max(abs(dx), abs(dy)) >= MIN_GLOBAL_SHIFT:
            consider(_global_vectors((dx, dy), steps), "global", (dx, dy))
    if local_motion and len(prev):
        field = block_motion(source, image[0], MOTION_BLOCK)
        if bool(field.vectors.abs().max() > 0):
            consider(field_vectors(field.vectors, field.spacing, steps, smoothing), "local", (0.0, 0.0))
    return warm


def fit_inter(image: torch.Tensor, warm: WarmStart, steps: QuantSteps, *, n_add: int,
              n_prune: int, active_fraction: float, iterations: int, extra_iterations: int = 0,
              channel_weights: tuple[float, float, float], seed: int = 0,
              lrs: tuple[float, float, float] = INTER_LRS) -> InterResult:
    """Fit a P-frame to `image` [3,H,W] from its warm start (see `warm_start`).

    n_add new splats at the residual, n_prune least useful previous splats removed, and at most
    active_fraction of the survivors allowed to change (new splats are always active).
    extra_iterations: up to this many more, CONTINUE_WINDOW at a time, while the loss still falls by
    CONTINUE_GAIN per window (a frame the warm start explains well stops at `iterations`).
    """
    device = image.device
    _, height, width = image.shape
    weights = loss_weights(channel_weights, device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    base_q, prev, rendered, wt_r = warm.base, warm.splats, warm.rendered, warm.wt_residual
    kept, rendered, fresh = prune_and_place(prev, rendered, wt_r, image, n_prune, n_add, weights, generator,
                                            min_sigma=0.5)
    survivors = prev.select(kept)
    if len(fresh):
        fresh = Splats(fresh.means, fresh.chol, refit_colours(
            fresh.means, fresh.chol, image - rendered, fresh.colors, iters=8))
    current = Splats.cat([survivors, fresh])
    n_kept, n_total = len(survivors), len(current)

    # Which survivors may change: the most sensitive ones.
    priority = torch.full((n_total,), float("inf"), device=device)
    if n_kept:
        priority[:n_kept] = _sensitivity(current, image, weights, steps)[:n_kept]
    n_active_kept = int(round(max(0.0, min(1.0, active_fraction)) * n_kept))
    active = torch.zeros(n_total, dtype=torch.bool, device=device)
    active[n_kept:] = True
    if n_active_kept:
        active[torch.topk(priority[:n_kept], n_active_kept).indices] = True
    active_idx = torch.nonzero(active).flatten()
    frozen_idx = torch.nonzero(~active).flatten()
    frozen = current.select(frozen_idx)
    order = torch.argsort(torch.cat([frozen_idx, active_idx]))  # rows of cat(frozen, active) -> full

    params = [t.detach().clone().requires_grad_(True)
              for t in (current.means[active_idx], current.chol[active_idx], current.colors[active_idx])]

    def assemble(active_splats: Splats) -> Splats:
        return Splats.cat([frozen, active_splats]).select(order)

    if len(active_idx) and iterations > 0:
        with torch.no_grad():
            base = render(frozen.means, frozen.chol, frozen.colors, height, width)
        optimizer = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)],
                                     eps=1e-15)
        losses: list[float] = []

        def fit_step() -> None:
            s = fake_quantise(Splats(*params), steps)
            out = base + render(s.means, s.chol, s.colors, height, width)
            loss = weighted_mse(out, image, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))

        for _ in range(iterations):
            fit_step()
        extra = 0
        while (extra < extra_iterations and len(losses) > CONTINUE_WINDOW
               and losses[-1] < (1 - CONTINUE_GAIN) * losses[-1 - CONTINUE_WINDOW]):
            for _ in range(CONTINUE_WINDOW):
                fit_step()
            extra += CONTINUE_WINDOW
        with torch.no_grad():  # closed-form colours of the active splats, geometry as quantised
            s = fake_quantise(Splats(*params), steps)
            params[2].copy_(refit_colours(s.means, s.chol, image - base, params[2].detach(), iters=10))

    final = assemble(Splats(*(p.detach() for p in params)))
    q = quantise(final, steps)
    # Frozen rows must carry their previous integers exactly (the float round trip must not move them).
    prev_rows = base_q.select(kept.cpu())
    frozen_rows = (~active[:n_kept]).cpu()
    q = QuantisedSplats(*[torch.cat([torch.where(frozen_rows[:, None], p, c[:n_kept]), c[n_kept:]])
                          for p, c in ((prev_rows.means, q.means), (prev_rows.chol, q.chol),
                                       (prev_rows.colors, q.colors))])
    with torch.no_grad():
        decoded = dequantise(q, steps, device)
        out = render(decoded.means, decoded.chol, decoded.colors, height, width).clamp(0, 1)
    return InterResult(q, kept.cpu(), active.cpu(), priority.cpu(), weighted_psnr(out, image, weights),
                       base_q, warm.vectors)

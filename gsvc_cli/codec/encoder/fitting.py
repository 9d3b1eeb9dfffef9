"""Fit one frame: find `count` splats whose render matches an image (the I-frame fitter).

Content-aware start, closed-form colour refits, error-driven densification with contribution-based
pruning, per-parameter learning rates in pixel units with a cosine schedule, and early stopping
when the PSNR gain per step falls below a threshold (knobs: presets.FitConfig). The published
GaussianImage/GSVC recipe we measure against lives beside the benchmark (bench/baseline_fit.py).

Order contract for warm starts: with `init`, the returned splats are the surviving init splats in
their original order followed by the new ones; `FitStats.kept` lists the survivors' indices into
`init` (increasing).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from gsvc_cli.codec.encoder.colour_refit import refit_colours
from gsvc_cli.codec.encoder.densify import colour_gradient, prune_and_place
from gsvc_cli.codec.encoder.init import content_aware_splats
from gsvc_cli.codec.encoder.loss import fitting_loss, loss_weights, weighted_psnr
from gsvc_cli.codec.encoder.presets import FitConfig
from gsvc_cli.codec.splats import Splats
from gsvc_cli.metrics.psnr import mse_to_psnr
from gsvc_cli.progress import ProgressCallback, report
from gsvc_cli.render import render


@dataclass
class FitStats:
    """What happened during a fit. psnr in dB of the final (transformed, clamped) render in the
    loss's channel weighting; history holds (step, seconds, loss, psnr) at a few points; kept [K] int64 are
    the indices into init of the surviving init splats (empty without init)."""

    steps: int
    seconds: float
    psnr: float
    history: list[tuple[int, float, float, float]] = field(default_factory=list)
    kept: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    added: int = 0
    pruned: int = 0
    count: int = 0


class _Parameters:
    """The trainable tensors (means, chol, colours), rebuilt when splats are pruned and added."""

    def __init__(self, splats: Splats) -> None:
        self.tensors = [t.detach().clone().contiguous().requires_grad_(True)
                        for t in (splats.means, splats.chol, splats.colors)]

    def splats(self) -> Splats:
        return Splats(*self.tensors)

    def set_colors(self, colors: torch.Tensor) -> None:
        with torch.no_grad():
            self.tensors[2].copy_(colors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def rebuild(self, keep: torch.Tensor, new: Splats, optimizer: torch.optim.Optimizer) -> None:
        """Keep rows `keep` (increasing), append `new`, and carry the optimiser moments along."""
        old = self.tensors
        n_old = old[0].shape[0]
        self.tensors = [torch.cat([t.detach()[keep], r.detach()]).contiguous().requires_grad_(True)
                        for t, r in zip(old, (new.means, new.chol, new.colors), strict=True)]
        by_id = {id(o): t for o, t in zip(old, self.tensors, strict=True)}
        for group in optimizer.param_groups:
            group["params"] = [by_id.get(id(p), p) for p in group["params"]]
        for o, t in zip(old, self.tensors, strict=True):
            state = optimizer.state.pop(o, None)
            if not state:
                continue
            for key, value in list(state.items()):
                if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == n_old:
                    pad = torch.zeros((len(new),) + tuple(value.shape[1:]), dtype=value.dtype,
                                      device=value.device)
                    state[key] = torch.cat([value[keep], pad])
            optimizer.state[t] = state


def _learning_rates(config: FitConfig, spacing: float) -> list[float]:
    return [config.lr_means * min(1.0, spacing / 4), config.lr_chol * spacing, config.lr_colors]


def _cosine(start: float, end: float, t: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _set_lr(optimizer: torch.optim.Optimizer, config: FitConfig, spacing: float, factor: float) -> None:
    for group, base in zip(optimizer.param_groups, _learning_rates(config, spacing), strict=True):
        group["lr"] = base * factor


def fit_frame(image: torch.Tensor, count: int, init: Splats | None = None, *,
              config: FitConfig = FitConfig(), seed: int = 0, progress: ProgressCallback | None = None,
              channel_weights: Sequence[float] | torch.Tensor | None = None,
              param_transform: Callable[[Splats], Splats] | None = None,
              coarse: tuple[Splats, int] | None = None) -> tuple[Splats, FitStats]:
    """Fit `count` splats to one frame.

    image [3,H,W] float32 in [0,1] (RGB or YUV 4:4:4) on any device; the splats live on the same
    device. init: warm-start splats (see the order contract in the module docstring).
    channel_weights: 3 loss weights (normalised to sum 1; default equal). param_transform: applied
    to the splats before every render in the loop (e.g. straight-through quantisation); the returned
    splats are the raw, untransformed parameters. coarse: the coarse stage, already run by the
    caller (`coarse_fit` of this image, count, config, seed and channel weights), which the fit
    then takes up as its own. Deterministic for a given seed on a given device.
    Returns (splats [count] in pixels, stats).
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3,H,W], got {tuple(image.shape)}")
    if count < 1:
        raise ValueError(f"splat count must be positive, got {count}")
    start_time = time.perf_counter()
    image = image.detach().float()
    if config.fine_factor > 1 and coarse is None and init is None and param_transform is None:
        return _downscaled_fit(image, count, config, seed, progress, channel_weights, start_time)
    device = image.device
    _, height, width = image.shape
    weights = loss_weights(channel_weights, device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    transform = param_transform or (lambda s: s)

    def draw(s: Splats) -> torch.Tensor:
        t = transform(s)
        return render(t.means, t.chol, t.colors, height, width)

    # --- starting splats, and the warm start's swap -----------------------------------------------
    origin: torch.Tensor  # index into init for each current splat, -1 for a new one
    added = pruned = coarse_steps = 0
    if coarse is None and init is None and param_transform is None:
        coarse = coarse_fit(image, count, config, seed, progress, channel_weights)
    if coarse is not None:
        start, coarse_steps = coarse
        fine = max(1, round(config.fine_steps * config.max_steps))
        config = replace(config, max_steps=fine, min_steps=min(config.min_steps, fine))
    if init is None:
        if coarse is None:
            start = content_aware_splats(image, count, generator, weights,
                                         uniform_mix=config.init_uniform_mix,
                                         size_scale=config.init_size_scale, min_sigma=config.min_sigma)
        origin = torch.full((count,), -1, dtype=torch.long, device=device)
        added = count
    else:
        start = init.detach().to(device).clone()
        origin = torch.arange(len(start), device=device)
    spacing = math.sqrt(height * width / max(count, 1))
    params = _Parameters(start)
    optimizer = torch.optim.Adam([{"params": [t], "lr": lr} for t, lr
                                  in zip(params.tensors, _learning_rates(config, spacing), strict=True)],
                                 eps=1e-15)

    def refit(iters: int) -> None:
        s = transform(params.splats())
        colors = refit_colours(s.means, s.chol, image, params.tensors[2].detach(), iters=iters)
        params.set_colors(colors)

    def swap(n_prune: int, n_add: int) -> None:
        """Prune the n_prune least useful splats, then add n_add at the residual (order kept)."""
        nonlocal origin, added, pruned
        s = params.splats().detach()
        rendered, g = colour_gradient(s, image, transform)
        keep, _, fresh = prune_and_place(s, rendered, g, image, n_prune, n_add, weights, generator,
                                         min_sigma=max(config.min_sigma, 0.5))
        params.rebuild(keep, fresh, optimizer)
        origin = torch.cat([origin[keep], torch.full((n_add,), -1, dtype=torch.long, device=device)])
        added += n_add
        pruned += len(s) - len(keep)

    if init is not None:
        n_add = min(round(config.add_fraction * len(start)) if config.add_fraction else 0, count)
        n_prune = max(0, len(start) + n_add - min(count, len(start)))
        if len(start) < count:
            n_add += count - len(start)
        if n_add or n_prune:
            swap(n_prune, n_add)
    refit(config.refit_iters)

    # --- the loop -------------------------------------------------------------------------------
    psnrs: list[float] = []
    history: list[tuple[int, float, float, float]] = []
    history_every = max(1, config.max_steps // max(1, config.history_points))
    densify_end = int(config.densify_until * config.max_steps)
    last_event = 0
    step = 0
    current_psnr = float("nan")
    anneal: tuple[int, float] | None = None  # (step, lr factor) where the plateau's short decay began
    factor = 1.0
    for step in range(1, config.max_steps + 1):
        if anneal is None:
            factor = _cosine(1.0, config.lr_final_fraction, (step - 1) / max(1, config.max_steps))
        else:
            since = step - 1 - anneal[0]
            factor = _cosine(anneal[1], config.lr_final_fraction, since / config.anneal_steps)
        _set_lr(optimizer, config, spacing, factor)
        out = draw(params.splats())
        loss, coded_mse = fitting_loss(out, image, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            chol = params.tensors[1]
            chol[:, 0].clamp_(min=config.min_sigma)
            chol[:, 2].clamp_(min=config.min_sigma)
        current_psnr = mse_to_psnr(coded_mse, 1.0)
        psnrs.append(current_psnr)
        if step % history_every == 0 or step == 1:
            history.append((step, time.perf_counter() - start_time, float(loss.detach()), current_psnr))
            report(progress, "fit", step, config.max_steps, psnr=current_psnr, splats=len(params))
        if config.time_limit is not None and time.perf_counter() - start_time >= config.time_limit:
            break
        event = False
        if (step % config.densify_every == 0 and step < config.max_steps and step <= densify_end
                and config.swap_fraction > 0):
            k = max(1, round(config.swap_fraction * len(params)))
            swap(k, k)
            event = True
        if event or step % config.refit_every == 0:
            refit(config.refit_iters)
            last_event = step
        if anneal is not None:
            if step - anneal[0] >= config.anneal_steps:
                break
        elif (step >= config.min_steps and step > densify_end and step - last_event >= config.stop_window
                and _plateau(psnrs, config)):
            if config.anneal_steps <= 0:
                break
            anneal = (step, factor)

    # --- finish: last colour refit, keep whichever of before/after is better ----------------------
    before = params.splats().detach()
    refit(config.final_refit_iters)
    after = params.splats().detach()
    with torch.no_grad():
        p_before = weighted_psnr(draw(before).clamp(0, 1), image, weights)
        p_after = weighted_psnr(draw(after).clamp(0, 1), image, weights)
    final, current_psnr = (after, p_after) if p_after >= p_before else (before, p_before)
    report(progress, "fit", step, step, psnr=current_psnr, splats=len(final))
    history.append((step, time.perf_counter() - start_time, float("nan"), current_psnr))
    kept = origin[origin >= 0].cpu() if init is not None else torch.zeros(0, dtype=torch.long)
    stats = FitStats(steps=coarse_steps + step, seconds=time.perf_counter() - start_time, psnr=current_psnr,
                     history=history, kept=kept, added=added, pruned=pruned, count=len(final))
    return Splats(final.means.contiguous(), final.chol.contiguous(), final.colors.contiguous()), stats


def _downscaled_fit(image: torch.Tensor, count: int, config: FitConfig, seed: int,
                    progress: ProgressCallback | None,
                    channel_weights: Sequence[float] | torch.Tensor | None, start_time: float
                    ) -> tuple[Splats, FitStats]:
    """fit_frame with config.fine_factor f > 1: every step on the frame averaged over f x f
    blocks (its coarse stage at coarse_factor / f of that), then the splats scaled up and their
    colours refitted once at full size, kept where that raises the PSNR."""
    f = config.fine_factor
    _, height, width = image.shape
    small = _block_means(image, f)
    small_config = replace(config, fine_factor=1, coarse_factor=max(1, config.coarse_factor // f),
                           coarse_min_pixels=config.coarse_min_pixels // (f * f),
                           final_refit_iters=config.refit_iters)
    fitted, stats = fit_frame(small, count, config=small_config, seed=seed, progress=progress,
                              channel_weights=channel_weights)
    before = Splats(fitted.means * f, fitted.chol * f, fitted.colors)
    weights = loss_weights(channel_weights, image.device)
    colors = refit_colours(before.means, before.chol, image, before.colors, iters=config.final_refit_iters)
    after = Splats(before.means, before.chol, colors)
    with torch.no_grad():
        scores = [weighted_psnr(render(s.means, s.chol, s.colors, height, width).clamp(0, 1), image, weights)
                  for s in (before, after)]
    final, psnr = (after, scores[1]) if scores[1] >= scores[0] else (before, scores[0])
    return final, replace(stats, seconds=time.perf_counter() - start_time, psnr=psnr)


def _block_means(image: torch.Tensor, f: int) -> torch.Tensor:
    """The frame averaged over f x f blocks (rows and columns beyond a multiple of f dropped);
    a splat centre at integer + 0.5 in it sits at f times that in the frame."""
    _, height, width = image.shape
    return torch.nn.functional.avg_pool2d(image[None, :, :height - height % f, :width - width % f], f)[0]


def coarse_fit(image: torch.Tensor, count: int, config: FitConfig, seed: int,
               progress: ProgressCallback | None, channel_weights: Sequence[float] | torch.Tensor | None
               ) -> tuple[Splats, int] | None:
    """The coarse half of a coarse-to-fine fit: `count` splats fitted to the frame averaged over
    blocks of f x f pixels (f: config.coarse_factor), returned in full-size pixels (centres sit at
    integer + 0.5, so coordinates scale by f), with the steps it took. None when the config or the
    frame size asks for no coarse stage."""
    _, height, width = image.shape
    steps = round(config.coarse_steps * config.max_steps)
    if steps < 1 or height * width < config.coarse_min_pixels:
        return None
    f = config.coarse_factor
    small = _block_means(image, f)
    coarse_config = replace(config, max_steps=steps, min_steps=min(config.min_steps, steps), coarse_steps=0.0)
    splats, stats = fit_frame(small, count, config=coarse_config, seed=seed, progress=progress,
                              channel_weights=channel_weights)
    return Splats(splats.means * f, splats.chol * f, splats.colors), stats.steps


def _plateau(psnrs: list[float], config: FitConfig) -> bool:
    """True when the PSNR gained over the last stop_window steps is below stop_gain_db per step."""
    w = config.stop_window
    if len(psnrs) <= w:
        return False
    gain = max(psnrs[-w // 2:]) - max(psnrs[-w - 1: -w // 2])
    return gain / w < config.stop_gain_db

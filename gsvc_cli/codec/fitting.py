"""Fit one frame: find splats whose render matches an image, at a splat count or a target PSNR.

This is the I-frame encoder and the engine of every P-frame (a warm start from given splats).
Two recipes share the loop:
- "baseline": the published GaussianImage/GSVC recipe, kept to measure against: random start,
  centre = tanh(u) mapped to the frame, Cholesky raw + (0.5, 0, 0.5), unbounded colour, Adan at
  lr 1e-3 for every parameter (halved every 20,000 steps), L2 on the clamped render, fixed steps.
- "ours": content-aware start, closed-form colour refits, error-driven densification with
  contribution-based pruning, per-parameter learning rates in pixel units with a cosine schedule,
  and early stopping when the PSNR gain per step falls below a threshold.

Order contract for inter coding: with `init`, the returned splats are the surviving init splats in
their original order followed by the new ones; `FitStats.kept` lists the survivors' indices into
`init` (increasing), so the codec can code deletions and insertions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from gsvc_cli.codec.adan import Adan
from gsvc_cli.codec.colour_refit import refit_colours
from gsvc_cli.codec.densify import place_at_residual, removal_cost
from gsvc_cli.codec.init import content_aware_splats, random_splats
from gsvc_cli.codec.splats import Splats
from gsvc_cli.progress import ProgressCallback, report
from gsvc_cli.render import render

CHOL_OFFSET = (0.5, 0.0, 0.5)  # GaussianImage: Cholesky = raw + this
MAX_PSNR = 100.0  # reported for an exact match, so figures stay finite


@dataclass(frozen=True)
class SplatBudget:
    """What to fit for: exactly `count` splats, or the fewest reaching `psnr` dB (at most
    `max_count`). PSNR is measured in the fitting loss's channel weighting."""

    count: int | None = None
    psnr: float | None = None
    max_count: int | None = None

    def __post_init__(self) -> None:
        if (self.count is None) == (self.psnr is None):
            raise ValueError("SplatBudget needs exactly one of count= or psnr=")
        if self.count is not None and self.count < 1:
            raise ValueError(f"splat count must be positive, got {self.count}")
        if self.max_count is not None and self.max_count < 1:
            raise ValueError(f"max_count must be positive, got {self.max_count}")


@dataclass(frozen=True)
class FitConfig:
    """Knobs of the fitting loop. Learning rates of "ours" are per step: means in pixels, chol
    relative to the typical splat spacing, colours in image units."""

    recipe: str = "ours"  # "ours" | "baseline"
    max_steps: int = 600
    min_steps: int = 40  # never stop early before this
    # Learning rates ("ours": Adam; cosine decay to lr * lr_final_fraction over max_steps).
    lr_means: float = 0.25
    lr_chol: float = 0.04
    lr_colors: float = 0.01
    lr_final_fraction: float = 0.05
    # Baseline recipe (Adan, one lr for all, StepLR).
    baseline_lr: float = 1e-3
    baseline_step_size: int = 20_000
    baseline_gamma: float = 0.5
    # Early stopping: stop when the PSNR gain over the last stop_window steps, per step, is below this.
    stop_gain_db: float = 2e-3
    stop_window: int = 40
    # Closed-form colour refits (every refit_every steps, after each densification and at the end).
    refit_every: int = 100
    refit_iters: int = 6
    final_refit_iters: int = 25
    # Densification / pruning: every densify_every steps while step < densify_until * max_steps,
    # swap swap_fraction of the splats (prune the least useful, add at the largest residual).
    densify_every: int = 50
    densify_until: float = 0.6
    swap_fraction: float = 0.05
    grow_fraction: float = 0.25  # PSNR budget: grow by this much while below the target
    # Warm start (P-frames): splats to add at the start, as a fraction of len(init) (None: only what
    # the count budget needs); the same number of least useful splats is pruned to keep the count.
    add_fraction: float | None = None
    # Initial placement ("ours").
    init_uniform_mix: float = 0.3
    init_size_scale: float = 0.6
    min_sigma: float = 0.35  # pixels; Cholesky diagonal floor so no splat collapses
    start_fraction_psnr: float = 0.5  # PSNR budget: start at this fraction of max_count
    history_points: int = 60
    time_limit: float | None = None  # seconds; stop after this much wall time (benchmarks, budgets)

    @staticmethod
    def preset(name: str, pframe: bool = False) -> FitConfig:
        """Speed/quality presets, as the encoder's --preset: "fast", "medium", "slow"; pframe=True
        gives the warm-start variant (far fewer steps, 10% swap at the start, no later swaps)."""
        steps = {"fast": 250, "medium": 600, "slow": 1500}
        if name not in steps:
            raise ValueError(f"unknown preset {name!r}; choose fast, medium or slow")
        if not pframe:
            return FitConfig(max_steps=steps[name])
        return FitConfig(max_steps=max(60, steps[name] // 5), min_steps=20, lr_means=0.05,
                         lr_chol=0.005, lr_colors=0.004, densify_until=0.0, add_fraction=0.1,
                         stop_window=20, refit_every=50)

    @staticmethod
    def baseline(steps: int) -> FitConfig:
        """The published recipe for `steps` steps (no early stopping, no refits, no densify)."""
        return FitConfig(recipe="baseline", max_steps=steps, min_steps=steps)


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


def normalised_weights(channel_weights: Sequence[float] | torch.Tensor | None,
                        device: torch.device) -> torch.Tensor:
    """Loss weights of the 3 channels as a [3] float32 tensor summing to 1 (equal when None)."""
    if channel_weights is None:
        return torch.full((3,), 1 / 3, device=device)
    w = torch.as_tensor(channel_weights, dtype=torch.float32, device=device).reshape(3)
    if bool((w < 0).any()) or not bool(w.sum() > 0):
        raise ValueError(f"channel weights must be non-negative and not all zero, got {w.tolist()}")
    return w / w.sum()


def weighted_mse(a: torch.Tensor, b: torch.Tensor, channel_weights: torch.Tensor) -> torch.Tensor:
    """Per-channel mean squared error of [3,H,W] images, combined with weights summing to 1."""
    return (((a - b) ** 2).mean(dim=(1, 2)) * channel_weights).sum()


def _mse_to_psnr(mse: float) -> float:
    return MAX_PSNR if mse <= 10 ** (-MAX_PSNR / 10) else -10 * math.log10(mse)


@torch.no_grad()
def psnr(image_a: torch.Tensor, image_b: torch.Tensor,
         channel_weights: Sequence[float] | torch.Tensor | None = None) -> float:
    """PSNR in dB between two [3,H,W] images in [0,1] (peak 1), channels weighted (default equal)."""
    w = normalised_weights(channel_weights, image_a.device)
    return _mse_to_psnr(float(weighted_mse(image_a.float(), image_b.float(), w)))


@torch.no_grad()
def render_splats(splats: Splats, height: int, width: int, backend: str = "auto") -> torch.Tensor:
    """The image the splats decode to: [3,H,W] float32 clamped to [0,1]."""
    return render(splats.means, splats.chol, splats.colors, height, width, backend=backend).clamp(0, 1)


class _Parameters:
    """Raw trainable tensors and the map from them to render-space Splats (recipe-specific)."""

    def __init__(self, splats: Splats, recipe: str, height: int, width: int) -> None:
        self.recipe, self.height, self.width = recipe, height, width
        device = splats.device
        self.size = torch.tensor([width, height], device=device, dtype=torch.float32)
        self.offset = torch.tensor(CHOL_OFFSET, device=device)
        raw = self._to_raw(splats)
        self.tensors = [t.detach().clone().contiguous().requires_grad_(True) for t in raw]

    def _to_raw(self, s: Splats) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.recipe == "baseline":
            unit = (s.means / self.size * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6)
            return torch.atanh(unit), s.chol - self.offset, s.colors
        return s.means, s.chol, s.colors

    def splats(self) -> Splats:
        means, chol, colors = self.tensors
        if self.recipe == "baseline":
            return Splats((torch.tanh(means) + 1) * 0.5 * self.size, chol + self.offset, colors)
        return Splats(means, chol, colors)

    def set_colors(self, colors: torch.Tensor) -> None:
        with torch.no_grad():
            self.tensors[2].copy_(colors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def rebuild(self, keep: torch.Tensor, new: Splats, optimizer: torch.optim.Optimizer) -> None:
        """Keep rows `keep` (increasing), append `new`, and carry the optimiser moments along."""
        old = self.tensors
        n_old = old[0].shape[0]
        raw_new = self._to_raw(new)
        self.tensors = [torch.cat([t.detach()[keep], r.detach()]).contiguous().requires_grad_(True)
                        for t, r in zip(old, raw_new, strict=True)]
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


def _ours_lrs(config: FitConfig, spacing: float) -> list[float]:
    return [config.lr_means * min(1.0, spacing / 4), config.lr_chol * spacing, config.lr_colors]


def _make_optimizer(params: _Parameters, config: FitConfig, spacing: float) -> torch.optim.Optimizer:
    if config.recipe == "baseline":
        return Adan([{"params": [t]} for t in params.tensors], lr=config.baseline_lr)
    lrs = _ours_lrs(config, spacing)
    return torch.optim.Adam([{"params": [t], "lr": lr} for t, lr in zip(params.tensors, lrs, strict=True)],
                            eps=1e-15)


def _set_lr(optimizer: torch.optim.Optimizer, config: FitConfig, spacing: float, step: int) -> None:
    if config.recipe == "baseline":
        lr = config.baseline_lr * config.baseline_gamma ** (step // config.baseline_step_size)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return
    t = min(1.0, step / max(1, config.max_steps))
    factor = config.lr_final_fraction + (1 - config.lr_final_fraction) * 0.5 * (1 + math.cos(math.pi * t))
    for group, base in zip(optimizer.param_groups, _ours_lrs(config, spacing), strict=True):
        group["lr"] = base * factor


def _initial_count(budget: SplatBudget, init: Splats | None, config: FitConfig, pixels: int) -> int:
    if budget.count is not None:
        return budget.count
    cap = budget.max_count or pixels
    if init is not None:
        return min(len(init), cap)
    return max(1, min(cap, int(cap * config.start_fraction_psnr)))


def fit_frame(image: torch.Tensor, budget: SplatBudget, init: Splats | None = None, *,
              config: FitConfig = FitConfig(), seed: int = 0, progress: ProgressCallback | None = None,
              channel_weights: Sequence[float] | torch.Tensor | None = None,
              param_transform: Callable[[Splats], Splats] | None = None) -> tuple[Splats, FitStats]:
    """Fit splats to one frame.

    image [3,H,W] float32 in [0,1] (RGB or YUV 4:4:4) on any device; the splats live on the same
    device. budget: a splat count or a target PSNR (dB, in the channel weighting). init: warm-start
    splats (P-frames; see the order contract in the module docstring). channel_weights: 3 loss
    weights (normalised to sum 1; default equal). param_transform: applied to the splats before
    every render in the loop (e.g. straight-through quantisation); the returned splats are the raw,
    untransformed parameters. Deterministic for a given seed on a given device.
    Returns (splats [N] in pixels, stats).
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3,H,W], got {tuple(image.shape)}")
    if config.recipe not in ("ours", "baseline"):
        raise ValueError(f"unknown fitting recipe {config.recipe!r}")
    start_time = time.perf_counter()
    image = image.detach().float()
    device = image.device
    _, height, width = image.shape
    weights = normalised_weights(channel_weights, device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    transform = param_transform or (lambda s: s)
    target_psnr = budget.psnr
    max_count = budget.count if budget.count is not None else (budget.max_count or height * width)
    count = _initial_count(budget, init, config, height * width)
    ours = config.recipe == "ours"

    def draw(s: Splats) -> torch.Tensor:
        t = transform(s)
        return render(t.means, t.chol, t.colors, height, width)

    # --- starting splats, and the P-frame swap at the start -------------------------------------
    origin: torch.Tensor  # index into init for each current splat, -1 for a new one
    added = pruned = 0
    if init is None:
        if ours:
            start = content_aware_splats(image, count, generator, weights,
                                         uniform_mix=config.init_uniform_mix,
                                         size_scale=config.init_size_scale, min_sigma=config.min_sigma)
        else:
            start = random_splats(count, height, width, generator, device)
        origin = torch.full((count,), -1, dtype=torch.long, device=device)
        added = count
    else:
        start = init.detach().to(device).clone()
        origin = torch.arange(len(start), device=device)
    spacing = math.sqrt(height * width / max(count, 1))
    params = _Parameters(start, config.recipe, height, width)
    optimizer = _make_optimizer(params, config, spacing)

    def refit(iters: int) -> None:
        s = transform(params.splats())
        colors = refit_colours(s.means, s.chol, image, params.tensors[2].detach(), iters=iters)
        params.set_colors(colors)

    def colour_gradient() -> tuple[torch.Tensor, torch.Tensor]:
        """(render, W^T (render - target)) for the current splats, without touching .grad."""
        s = params.splats()
        probe = s.colors.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            t = transform(Splats(s.means.detach(), s.chol.detach(), probe))
            out = render(t.means, t.chol, t.colors, height, width)
            (g,) = torch.autograd.grad(out, probe, grad_outputs=(out - image).detach())
        return out.detach(), g

    def swap(n_prune: int, n_add: int) -> None:
        """Prune the n_prune least useful splats, then add n_add at the residual (order kept)."""
        nonlocal origin, added, pruned
        rendered, g = colour_gradient()
        s = params.splats().detach()
        n = len(s)
        n_prune = max(0, min(n_prune, n - 1))
        keep = torch.arange(n, device=device)
        if n_prune:
            cost = removal_cost(s.colors, s.chol, g, weights)
            worst = torch.topk(cost, n_prune, largest=False).indices
            mask = torch.ones(n, dtype=torch.bool, device=device)
            mask[worst] = False
            keep = keep[mask]
            with torch.no_grad():
                # Take the pruned splats out of the render before choosing where to add.
                rendered = rendered - render(s.means[worst], s.chol[worst], s.colors[worst], height, width)
        fresh = place_at_residual(rendered, image, n_add, len(keep) + n_add, weights, generator,
                                  min_sigma=max(config.min_sigma, 0.5))
        params.rebuild(keep, fresh, optimizer)
        origin = torch.cat([origin[keep], torch.full((n_add,), -1, dtype=torch.long, device=device)])
        added += n_add
        pruned += n_prune

    if init is not None:
        n_add = round(config.add_fraction * len(start)) if config.add_fraction else 0
        n_add = min(n_add, max_count)
        n_target = min(max_count, len(start)) if budget.count is not None else len(start)
        n_prune = max(0, len(start) + n_add - n_target)
        if budget.count is not None and len(start) < budget.count:
            n_add += budget.count - len(start)
        if n_add or n_prune:
            swap(n_prune, n_add)
    if ours:
        refit(config.refit_iters)

    # --- the loop -------------------------------------------------------------------------------
    psnrs: list[float] = []
    history: list[tuple[int, float, float, float]] = []
    history_every = max(1, config.max_steps // max(1, config.history_points))
    densify_end = int(config.densify_until * config.max_steps)
    last_event = 0
    step = 0
    current_psnr = float("nan")
    for step in range(1, config.max_steps + 1):
        _set_lr(optimizer, config, spacing, step - 1)
        out = draw(params.splats())
        clamped = out.clamp(0, 1)
        loss = weighted_mse(clamped if not ours else out, image, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ours:
            with torch.no_grad():
                chol = params.tensors[1]
                chol[:, 0].clamp_(min=config.min_sigma)
                chol[:, 2].clamp_(min=config.min_sigma)
        with torch.no_grad():
            current_psnr = _mse_to_psnr(float(weighted_mse(clamped.detach(), image, weights)))
        psnrs.append(current_psnr)
        if step % history_every == 0 or step == 1:
            history.append((step, time.perf_counter() - start_time, float(loss.detach()), current_psnr))
            report(progress, "fit", step, config.max_steps, psnr=current_psnr, splats=len(params))
        if target_psnr is not None and current_psnr >= target_psnr:
            break
        if config.time_limit is not None and time.perf_counter() - start_time >= config.time_limit:
            break
        if not ours:
            continue
        event = False
        below_target = target_psnr is not None and current_psnr < target_psnr
        if step % config.densify_every == 0 and step < config.max_steps:
            n = len(params)
            if below_target and n < max_count and (step <= densify_end or _plateau(psnrs, config)):
                swap(0, min(max_count - n, max(1, math.ceil(config.grow_fraction * n))))
                event = True
            elif step <= densify_end and config.swap_fraction > 0:
                k = max(1, round(config.swap_fraction * n))
                swap(k, k)
                event = True
        if event or step % config.refit_every == 0:
            refit(config.refit_iters)
            last_event = step
        if (step >= config.min_steps and step > densify_end and step - last_event >= config.stop_window
                and _plateau(psnrs, config)
                and not (below_target and len(params) < max_count)):
            break

    # --- finish: last colour refit, keep whichever of before/after is better ----------------------
    final = params.splats().detach()
    if ours:
        before = final
        refit(config.final_refit_iters)
        after = params.splats().detach()
        with torch.no_grad():
            p_before = psnr(draw(before).clamp(0, 1), image, weights)
            p_after = psnr(draw(after).clamp(0, 1), image, weights)
        final, current_psnr = (after, p_after) if p_after >= p_before else (before, p_before)
    else:
        with torch.no_grad():
            current_psnr = psnr(draw(final).clamp(0, 1), image, weights)
    report(progress, "fit", step, step, psnr=current_psnr, splats=len(final))
    history.append((step, time.perf_counter() - start_time, float("nan"), current_psnr))
    kept = origin[origin >= 0].cpu() if init is not None else torch.zeros(0, dtype=torch.long)
    stats = FitStats(steps=step, seconds=time.perf_counter() - start_time, psnr=current_psnr,
                     history=history, kept=kept, added=added, pruned=pruned, count=len(final))
    return Splats(final.means.contiguous(), final.chol.contiguous(), final.colors.contiguous()), stats


def _plateau(psnrs: list[float], config: FitConfig) -> bool:
    """True when the PSNR gained over the last stop_window steps is below stop_gain_db per step."""
    w = config.stop_window
    if len(psnrs) <= w:
        return False
    gain = max(psnrs[-w // 2:]) - max(psnrs[-w - 1: -w // 2])
    return gain / w < config.stop_gain_db


def with_steps(config: FitConfig, steps: int) -> FitConfig:
    """A copy of config with a different step cap (keeps the other knobs)."""
    return replace(config, max_steps=steps)

"""The published GaussianImage/GSVC fitting recipe, kept beside the benchmark to measure against.

Random start, centre = tanh(u) mapped to the frame, Cholesky = raw + (0.5, 0, 0.5), unbounded
colour, Adan at lr 1e-3 for every parameter (halved every 20,000 steps), L2 on the clamped render,
a fixed number of steps (no refits, no densification, no early stopping). Figures from
../shared/design/GSVC-METHOD.md; the code is ours. The product's fitter is
gsvc_cli/codec/encoder/fitting.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adan import Adan  # noqa: E402  (bench scripts import each other by path)

from gsvc_cli.codec.encoder.fitting import FitStats  # noqa: E402
from gsvc_cli.codec.encoder.init import random_splats  # noqa: E402
from gsvc_cli.codec.encoder.loss import loss_weights, weighted_mse, weighted_psnr  # noqa: E402
from gsvc_cli.codec.splats import Splats  # noqa: E402
from gsvc_cli.metrics.psnr import mse_to_psnr  # noqa: E402
from gsvc_cli.progress import ProgressCallback, report  # noqa: E402
from gsvc_cli.render import render  # noqa: E402

CHOL_OFFSET = (0.5, 0.0, 0.5)
LR = 1e-3
LR_HALVING_STEPS = 20_000


def fit_baseline(image: torch.Tensor, count: int, steps: int, *, seed: int = 0,
                 channel_weights: Sequence[float] | None = None, time_limit: float | None = None,
                 history_points: int = 60, progress: ProgressCallback | None = None
                 ) -> tuple[Splats, FitStats]:
    """Fit `count` splats to image [3,H,W] in [0,1] for `steps` steps (or until `time_limit` s)."""
    start_time = time.perf_counter()
    image = image.detach().float()
    device = image.device
    _, height, width = image.shape
    weights = loss_weights(channel_weights, device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    size = torch.tensor([width, height], device=device, dtype=torch.float32)
    offset = torch.tensor(CHOL_OFFSET, device=device)
    start = random_splats(count, height, width, generator, device)
    unit = (start.means / size * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6)
    raw = [t.detach().clone().contiguous().requires_grad_(True)
           for t in (torch.atanh(unit), start.chol - offset, start.colors)]

    def splats() -> Splats:
        return Splats((torch.tanh(raw[0]) + 1) * 0.5 * size, raw[1] + offset, raw[2])

    optimizer = Adan([{"params": [t]} for t in raw], lr=LR)
    history: list[tuple[int, float, float, float]] = []
    every = max(1, steps // max(1, history_points))
    step = 0
    for step in range(1, steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = LR * 0.5 ** ((step - 1) // LR_HALVING_STEPS)
        s = splats()
        clamped = render(s.means, s.chol, s.colors, height, width).clamp(0, 1)
        loss = weighted_mse(clamped, image, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % every == 0 or step == 1:
            psnr = mse_to_psnr(float(weighted_mse(clamped.detach(), image, weights)), 1.0)
            history.append((step, time.perf_counter() - start_time, float(loss.detach()), psnr))
            report(progress, "fit", step, steps, psnr=psnr)
        if time_limit is not None and time.perf_counter() - start_time >= time_limit:
            break
    final = splats().detach()
    with torch.no_grad():
        psnr = weighted_psnr(render(final.means, final.chol, final.colors, height, width).clamp(0, 1),
                             image, weights)
    history.append((step, time.perf_counter() - start_time, float("nan"), psnr))
    stats = FitStats(steps=step, seconds=time.perf_counter() - start_time, psnr=psnr, history=history,
                     added=count, count=count)
    return Splats(final.means.contiguous(), final.chol.contiguous(), final.colors.contiguous()), stats

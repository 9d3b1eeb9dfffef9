"""Render benchmark: native CPU kernels vs the torch reference at 1920x1080.

    python bench/render.py [--splats 10000 100000] [--repeats 7] [--ref-splats 100] [--threads 2]

Splats are placed like a fitted frame's: on a real 1080p frame (../shared/data/clips_large/
street_1080p_54f.mp4, frame 0; random noise if absent), more where the image has detail, each with
the area its local density gives it (sigma = 0.6 sqrt(area), so mostly small with some large in flat
regions) and a random anisotropy and orientation. Prints forward ms, forward+backward ms,
splat-pixel evaluations per second and the ratio to the reference. The dense reference evaluates
every splat at every pixel, so its cost is exactly proportional to the splat count: it is timed on a
--ref-splats subsample of the same splats and scaled up (the line says so), and the native kernels
are also timed on that same subsample for a like-for-like ratio.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gsvc_cli.render import render
from gsvc_cli.render.build import cpu_kernels
from gsvc_cli.render.reference import render_reference

HEIGHT, WIDTH = 1080, 1920
CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips_large" / "street_1080p_54f.mp4"


def load_frame() -> tuple[torch.Tensor, str]:
    """[3,1080,1920] in [0,1] from the real clip, or seeded noise if the clip is missing."""
    try:
        import av

        with av.open(str(CLIP)) as container:
            frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
        image = torch.from_numpy(frame).permute(2, 0, 1).float() / 255
        if image.shape[1:] == (HEIGHT, WIDTH):
            return image, CLIP.name
    except Exception:  # noqa: BLE001 - any failure: fall back to a synthetic frame
        pass
    return torch.rand(3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1)), "noise"


def fitted_like_splats(image: torch.Tensor, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(means [n,2], chol [n,3], colors [n,3]) placed by image detail, sized by local density."""
    g = torch.Generator().manual_seed(seed)
    _, h, w = image.shape
    gray = image.mean(0)
    detail = (gray[1:, :] - gray[:-1, :]).abs()[:, :-1] + (gray[:, 1:] - gray[:, :-1]).abs()[:-1, :]
    detail = F.pad(detail, (0, 1, 0, 1))
    detail = F.avg_pool2d(detail[None, None], 9, stride=1, padding=4)[0, 0]
    importance = 0.3 + 0.7 * detail / detail.mean().clamp(min=1e-8)
    prob = (importance / importance.sum()).flatten()
    idx = torch.multinomial(prob, n, replacement=True, generator=g)
    ys, xs = (idx // w).float(), (idx % w).float()
    means = torch.stack([xs, ys], 1) + torch.rand(n, 2, generator=g)
    area = 1.0 / (n * prob[idx])
    sigma = (0.6 * area.sqrt()).clamp(min=0.5, max=0.25 * max(h, w))
    aspect = torch.exp(0.4 * torch.randn(n, generator=g))
    angle = torch.rand(n, generator=g) * math.pi
    s1, s2 = sigma * aspect, sigma / aspect
    c, s = torch.cos(angle), torch.sin(angle)
    sxx = c * c * s1 * s1 + s * s * s2 * s2
    sxy = c * s * (s1 * s1 - s2 * s2)
    syy = s * s * s1 * s1 + c * c * s2 * s2
    l1 = sxx.sqrt()
    l2 = sxy / l1
    l3 = (syy - l2 * l2).clamp(min=1e-6).sqrt()
    chol = torch.stack([l1, l2, l3], 1)
    overlap = 2 * math.pi * 0.6**2
    colors = image[:, idx // w, idx % w].t() / overlap
    return means.contiguous(), chol.contiguous(), colors.contiguous()


def evaluations(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor) -> tuple[int, int]:
    """(lane evaluations the kernel performs, pixels inside the clipped boxes) for one forward."""
    _, _, boxes, _, tile_offsets, tile_splats, _ = cpu_kernels().forward(means, chol, colors, HEIGHT, WIDTH)
    lanes = 16 if cpu_kernels().simd() == "avx512" else 8
    tiles_x = (WIDTH + 15) // 16
    tile_of = torch.repeat_interleave(torch.arange(len(tile_offsets) - 1), tile_offsets.diff())
    b = boxes[tile_splats.long()].long()
    ty0, tx0 = (tile_of // tiles_x) * 16, (tile_of % tiles_x) * 16
    rows = (torch.minimum(b[:, 3], ty0 + 15) - torch.maximum(b[:, 2], ty0) + 1).clamp(min=0)
    x_lo, x_hi = torch.maximum(b[:, 0], tx0), torch.minimum(b[:, 1], tx0 + 15)
    cols = (x_hi - x_lo + 1).clamp(min=0)
    vectors = (x_hi // lanes - x_lo // lanes + 1).clamp(min=0)  # vectors per row touching the box
    return int((rows * vectors * lanes).sum()), int((rows * cols).sum())


def timed(fn, repeats: int, warm_up: bool = True) -> float:
    """Median wall time in ms (after one warm-up call unless warm_up is False); best time in _best."""
    if warm_up:
        fn()
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
        cpu_times.append((time.process_time() - cpu_start) * 1e3)
    _best.append(min(times))
    _cpu.append(statistics.median(cpu_times))
    return statistics.median(times)


# Best wall time and median process CPU time (all threads) of the latest timed() call. On a loaded
# shared machine wall time mostly measures waiting; CPU time measures the work (with one thread it
# has no OpenMP spin-waiting in it).
_best: list[float] = []
_cpu: list[float] = []


def forward_and_backward(backend: str, means, chol, colors, grad) -> callable:
    def run() -> None:
        params = [t.detach().requires_grad_(True) for t in (means, chol, colors)]
        out = render(*params, HEIGHT, WIDTH, backend=backend) if backend != "reference" else \
            render_reference(*params, HEIGHT, WIDTH)
        out.backward(grad)
    return run


def forward_only(backend: str, means, chol, colors) -> callable:
    def run() -> None:
        with torch.no_grad():
            if backend == "reference":
                render_reference(means, chol, colors, HEIGHT, WIDTH)
            else:
                render(means, chol, colors, HEIGHT, WIDTH, backend=backend)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splats", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ref-splats", type=int, default=100, help="0 skips the reference")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image, source = load_frame()
    print(f"render bench: {WIDTH}x{HEIGHT}, frame from {source}, torch threads {torch.get_num_threads()}, "
          f"kernels {cpu_kernels().simd()}")
    grad = torch.randn(3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(2))
    for n in args.splats:
        means, chol, colors = fitted_like_splats(image, n)
        sigma = (chol[:, 0] * chol[:, 2]).abs().sqrt()
        q = torch.quantile(sigma, torch.tensor([0.1, 0.5, 0.9, 0.99]))
        lane_evals, box_pixels = evaluations(means, chol, colors)
        fwd = timed(forward_only("cpu", means, chol, colors), args.repeats)
        fwd_best, fwd_cpu = _best[-1], _cpu[-1]
        both = timed(forward_and_backward("cpu", means, chol, colors, grad), args.repeats)
        both_best, both_cpu = _best[-1], _cpu[-1]
        print(f"\nN={n}: sigma px p10/p50/p90/p99 = {', '.join(f'{v:.2f}' for v in q.tolist())}; "
              f"{lane_evals / 1e6:.1f}M lane evaluations per render ({box_pixels / 1e6:.1f}M inside boxes)")
        print(f"  cpu forward          median {fwd:8.2f} ms (best {fwd_best:7.2f})   "
              f"{lane_evals / fwd / 1e6:.2f}e9 evals/s ({box_pixels / fwd / 1e6:.2f}e9 in-box)")
        print(f"  cpu forward+backward median {both:8.2f} ms (best {both_best:7.2f})   "
              f"ratio to forward {both / fwd:.2f}x (best/best {both_best / fwd_best:.2f}x)")
        print(f"  process CPU time: forward {fwd_cpu:.2f} ms, forward+backward {both_cpu:.2f} ms "
              f"(ratio {both_cpu / fwd_cpu:.2f}x); {lane_evals / fwd_cpu / 1e6:.2f}e9 evals per CPU-second")
        m = min(args.ref_splats, n)
        if m == 0:
            continue
        sub = torch.randperm(n, generator=torch.Generator().manual_seed(3))[:m]
        sm, sc, scol = means[sub].contiguous(), chol[sub].contiguous(), colors[sub].contiguous()
        ref_fwd = timed(forward_only("reference", sm, sc, scol), 1, warm_up=False)
        ref_both = timed(forward_and_backward("reference", sm, sc, scol, grad), 1, warm_up=False)
        sub_fwd = timed(forward_only("cpu", sm, sc, scol), args.repeats)
        sub_both = timed(forward_and_backward("cpu", sm, sc, scol, grad), args.repeats)
        scale = n / m
        print(f"  reference on a {m}-splat subsample: forward {ref_fwd:.0f} ms, fwd+bwd {ref_both:.0f} ms; "
              f"cpu on the same subsample {sub_fwd:.2f} / {sub_both:.2f} ms -> speed-up "
              f"{ref_fwd / sub_fwd:.0f}x / {ref_both / sub_both:.0f}x")
        print(f"  reference scaled to N={n} (dense cost is linear in N): "
              f"forward ~{ref_fwd * scale / 1e3:.1f} s, "
              f"fwd+bwd ~{ref_both * scale / 1e3:.1f} s -> cpu speed-up ~{ref_fwd * scale / fwd:.0f}x / "
              f"~{ref_both * scale / both:.0f}x")


if __name__ == "__main__":
    main()

"""Benchmark frame fitting: PSNR against splat count and against wall time, baseline vs ours.

Usage (from the repository root):
    python bench/fit.py compare [--images kodim05 kodim23] [--clip foreman_cif_60f.mp4]
                                [--counts 10000] [--preset medium]
    python bench/fit.py long-baseline kodim05 --steps 50000 --log /tmp/baseline_kodim05.log

`compare` fits each image with our recipe, then runs the published baseline recipe (random init,
Adan lr 1e-3, L2) for the same wall time in the same process, and prints one row per image and
count. `long-baseline` runs the baseline recipe for a fixed number of steps and logs PSNR as it goes
(the reference figure of issue #4). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch
from baseline_fit import fit_baseline

from gsvc_cli.codec.encoder.fitting import fit_frame
from gsvc_cli.codec.encoder.presets import get_preset
from gsvc_cli.progress import ProgressEvent

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_image(name: str) -> torch.Tensor:
    """A Kodak PNG (kodimNN) or the first frame of a clip, as [3,H,W] float32 RGB in [0,1]."""
    path = DATA / "kodak" / f"{name}.png" if name.startswith("kodim") else DATA / "clips" / name
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        rgb = frame.to_ndarray(format="rgb24")
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255


def compare(args: argparse.Namespace) -> None:
    names = list(args.images) + ([args.clip] if args.clip else [])
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, preset {args.preset}")
    print("| image | splats | ours PSNR | ours steps | ours wall s | ours CPU s |"
          " baseline PSNR same wall time | baseline steps | baseline CPU s | gain dB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        image = load_image(name)
        for count in args.counts:
            ours_cfg = get_preset(args.preset).intra
            cpu0 = time.process_time()
            splats, ours = fit_frame(image, count, config=ours_cfg, seed=0)
            cpu1 = time.process_time()
            _, base = fit_baseline(image, count, 50_000, time_limit=ours.seconds, history_points=2500, seed=0)
            cpu2 = time.process_time()
            print(f"| {name} | {count} | {ours.psnr:.2f} | {ours.steps} | {ours.seconds:.1f} | "
                  f"{cpu1 - cpu0:.1f} | "
                  f"{base.psnr:.2f} | {base.steps} | {cpu2 - cpu1:.1f} | {ours.psnr - base.psnr:+.2f} |",
                  flush=True)
            if args.curves:
                for label, stats in (("ours", ours), ("baseline", base)):
                    points = ", ".join(f"{s:.0f}s:{p:.2f}" for _, s, _, p in stats.history[:: max(
                        1, len(stats.history) // 8)])
                    print(f"  {label} psnr vs time: {points}", flush=True)


def long_baseline(args: argparse.Namespace) -> None:
    image = load_image(args.image)
    log = open(args.log, "a", buffering=1) if args.log else sys.stdout  # noqa: SIM115
    start = time.perf_counter()

    def progress(event: ProgressEvent) -> None:
        log.write(f"{args.image} step {event.done} t {time.perf_counter() - start:.0f}s "
                  f"psnr {event.info.get('psnr', float('nan')):.3f}\n")

    _, stats = fit_baseline(image, args.count, args.steps, seed=0, history_points=max(1, args.steps // 500),
                            progress=progress)
    log.write(f"{args.image} DONE steps {stats.steps} psnr {stats.psnr:.3f} seconds {stats.seconds:.0f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--images", nargs="*", default=["kodim05", "kodim23"])
    c.add_argument("--clip", default="foreman_cif_60f.mp4")
    c.add_argument("--counts", nargs="+", type=int, default=[10000])
    c.add_argument("--preset", default="medium")
    c.add_argument("--curves", action="store_true", help="also print PSNR against wall time")
    b = sub.add_parser("long-baseline")
    b.add_argument("image")
    b.add_argument("--steps", type=int, default=50_000)
    b.add_argument("--count", type=int, default=10_000)
    b.add_argument("--log", default=None)
    args = parser.parse_args()
    compare(args) if args.mode == "compare" else long_baseline(args)


if __name__ == "__main__":
    main()

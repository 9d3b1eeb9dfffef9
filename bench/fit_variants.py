"""FitConfig variants on one frame: which knob buys fit PSNR, and for how many steps.

Usage (from the repository root):
    python bench/fit_variants.py CLIP COUNT NAME:field=value,field=value ... [--frame K]

e.g. `python bench/fit_variants.py ../shared/data/clips/foreman_cif_60f.mp4 2000 base:
lr2:lr_means=0.5,lr_chol=0.08,lr_colors=0.02 decay:anneal_steps=200` fits frame K (default 0) of
CLIP, as the encoder sees it (YUV 4:4:4, 6:1:1 loss weights), from scratch with COUNT splats, once
per variant: FitConfig(max_steps=1200) with the named fields replaced (the I-fit of preset fast
below 1280x720 before 2026-12-05). One thread; prints fit PSNR, steps run and seconds per variant.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields, replace

import torch

from gsvc_cli.codec.encoder.fitting import fit_frame
from gsvc_cli.codec.encoder.gop import CHANNEL_WEIGHTS
from gsvc_cli.codec.encoder.presets import FitConfig
from gsvc_cli.video import open_video


def variant(spec: str) -> tuple[str, FitConfig]:
    """'name:field=value,...' -> (name, FitConfig(max_steps=1200) with those fields)."""
    name, _, assignments = spec.partition(":")
    kinds = {f.name: f.type for f in fields(FitConfig)}
    config = FitConfig(max_steps=1200)
    for item in filter(None, assignments.split(",")):
        key, value = item.split("=", 1)
        if key not in kinds:
            raise SystemExit(f"{spec}: FitConfig has no field {key}")
        config = replace(config, **{key: int(float(value)) if kinds[key] in ("int", int) else float(value)})
    return name, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip")
    parser.add_argument("count", type=int)
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--frame", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open_video(args.clip) as reader:
        frame = next(f for k, f in enumerate(reader) if k == args.frame)
    image = frame.to_yuv444_float()
    for name, config in map(variant, args.variants):
        start = time.perf_counter()
        _, stats = fit_frame(image, args.count, config=config, channel_weights=CHANNEL_WEIGHTS, seed=0)
        print(f"{name:16s} psnr {stats.psnr:.3f} dB  steps {stats.steps:5d}  "
              f"{time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()

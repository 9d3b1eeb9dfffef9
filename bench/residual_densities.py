"""An M-frame's residual search at several density lists, frame by frame: J and seconds of each.

Usage (from the repository root):
    python bench/residual_densities.py CLIP FRAMES QUALITY --specs "2000,700;700;2000"
        [--fits "fine_factor=2;fine_factor=2,fine_steps=0.6"] [--out OUT.gsvc]

Encodes the first FRAMES frames of CLIP at preset fast and constant quality QUALITY (one thread).
Wherever the encoder searches residual splats for an M-frame (Encoder._with_residual), the search
also runs with each density list of --specs (pixels per splat, as RDTuning.picture_residual and
large_picture_residual take them), and one JSON line per frame gives the moved picture's J without
residual splats and each list's J (the one the frame-type choice compares) and seconds. The encode
goes on with the first list's choice, and the search changes no encoder state, so the file is the
one the encoder writes with that list as its densities. With --fits, each list runs once more for
each ';'-separated set of FitConfig overrides of the residual fits (keys "LIST/OVERRIDES").
"""

from __future__ import annotations

import json
import time
from dataclasses import fields, replace

import torch
from probe_encode import encode_first_frames, probe_arguments

from gsvc_cli.codec.encoder import gop
from gsvc_cli.codec.encoder.presets import FitConfig


def fit_overrides(text: str) -> dict[str, object]:
    """"fine_factor=2,fine_steps=0.6" -> FitConfig.replace keywords, typed as the fields are."""
    types = {f.name: f.type for f in fields(FitConfig)}
    overrides: dict[str, object] = {}
    for item in filter(None, text.split(",")):
        name, value = item.split("=")
        overrides[name] = {"int": int, "float": float}.get(str(types[name]), float)(value)
    return overrides


def main() -> None:
    parser = probe_arguments(__doc__, "residual_densities.gsvc")
    parser.add_argument("--specs", default="2000,700;700;2000", help="density lists, ';'-separated")
    parser.add_argument("--fits", default="", help="';'-separated FitConfig overrides of the residual fits")
    args = parser.parse_args()
    specs = args.specs.split(";")
    variants = [""] + [v for v in args.fits.split(";") if v]
    search = gop.Encoder._with_residual
    searched = 0

    def logged(encoder: gop.Encoder, image: torch.Tensor, motion, plain):
        nonlocal searched
        searched += 1
        own, config = encoder.residual_densities, encoder.residual_config
        first, row = None, {"search": searched, "plain": round(plain[2], 3)}
        for spec in specs:
            for variant in variants:
                encoder.residual_densities = spec
                encoder.residual_config = replace(config, **fit_overrides(variant))
                start = time.perf_counter()
                choice = search(encoder, image, motion, plain)
                key = f"{spec}/{variant}" if variant else spec
                row[key] = {"j": round(choice[2], 3), "s": round(time.perf_counter() - start, 2)}
                first = choice if first is None else first
        encoder.residual_densities, encoder.residual_config = own, config
        print(json.dumps(row), flush=True)
        return first

    gop.Encoder._with_residual = logged
    print(encode_first_frames(args.clip, args.frames, args.quality, args.out))


if __name__ == "__main__":
    main()

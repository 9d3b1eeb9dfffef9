"""An M-frame's residual search at several density lists, frame by frame: J and seconds of each.

Usage (from the repository root):
    python bench/residual_densities.py CLIP FRAMES QUALITY --specs "2000,700;700;2000" [--out OUT.gsvc]

Encodes the first FRAMES frames of CLIP at preset fast and constant quality QUALITY (one thread).
Wherever the encoder searches residual splats for an M-frame (Encoder._with_residual), the search
also runs with each density list of --specs (pixels per splat, as RDTuning.picture_residual and
large_picture_residual take them), and one JSON line per frame gives the moved picture's J without
residual splats and each list's J (the one the frame-type choice compares) and seconds. The encode
goes on with the first list's choice, and the search changes no encoder state, so the file is the
one the encoder writes with that list as its densities.
"""

from __future__ import annotations

import json
import time

import torch
from probe_encode import encode_first_frames, probe_arguments

from gsvc_cli.codec.encoder import gop


def main() -> None:
    parser = probe_arguments(__doc__, "residual_densities.gsvc")
    parser.add_argument("--specs", default="2000,700;700;2000", help="density lists, ';'-separated")
    args = parser.parse_args()
    specs = args.specs.split(";")
    search = gop.Encoder._with_residual
    searched = 0

    def logged(encoder: gop.Encoder, image: torch.Tensor, motion, plain):
        nonlocal searched
        searched += 1
        own, first, row = encoder.residual_densities, None, {"search": searched, "plain": round(plain[2], 3)}
        for spec in specs:
            encoder.residual_densities = spec
            start = time.perf_counter()
            choice = search(encoder, image, motion, plain)
            row[spec] = {"j": round(choice[2], 3), "s": round(time.perf_counter() - start, 2)}
            first = choice if first is None else first
        encoder.residual_densities = own
        print(json.dumps(row), flush=True)
        return first

    gop.Encoder._with_residual = logged
    print(encode_first_frames(args.clip, args.frames, args.quality, args.out))


if __name__ == "__main__":
    main()

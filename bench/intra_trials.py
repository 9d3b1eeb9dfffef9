"""The real I-fit trials of an encode: how far each full fit's J lies below a short fit's.

Usage (from the repository root):
    python bench/intra_trials.py CLIP FRAMES QUALITY [--steps 150,300,600] [--out OUT.gsvc]

Encodes the first FRAMES frames of CLIP at preset fast and constant quality QUALITY (one thread)
with the short-fit gate off (RDTuning.intra_trial_steps 0), so that every trial runs the full
I-fit, and before each one also fits the frame for each of --steps steps (from scratch, the last
I-frame's count and step scale, as Encoder._intra_may_win does). Prints one JSON line per trial:
the P-frame's J over p_preference x the full fit's J (above 1: the I-frame wins), the full fit's
J over each short fit's (what INTRA_TRIAL_BOUND must stay below), and the seconds of each fit.
The extra fits change nothing in the encode: the file is the one the encoder writes without them.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import torch
from probe_encode import encode_first_frames, probe_arguments

from gsvc_cli.codec.encoder import gop
from gsvc_cli.codec.encoder.rd import RDTuning


def short_fit_cost(encoder: gop.Encoder, index: int, image: torch.Tensor, steps: int) -> float:
    """J (SSE + lambda x bits) of an I-frame fitted for `steps` steps, as the gate fits it."""
    intra = encoder.preset.intra
    config = replace(intra, max_steps=steps, anneal_steps=min(intra.anneal_steps, steps // 4))
    splats, _ = encoder._fit(image, encoder.intra_count, None, config, encoder.settings.seed + index, None)
    _, sse, bits = encoder._intra_cost_at(splats, image, encoder.intra_scale)
    return sse + encoder.lam * bits


def main() -> None:
    parser = probe_arguments(__doc__, "intra_trials.gsvc")
    parser.add_argument("--steps", default="150,300,600", help="short fits' steps, comma-separated")
    args = parser.parse_args()
    short_steps = [int(s) for s in args.steps.split(",")]

    def logged(encoder: gop.Encoder, index: int, image: torch.Tensor, p_cost: float):
        """Encoder._real_intra_if_cheaper without the gate, the full fit's J kept for the log."""
        shorts = {}
        for steps in short_steps:
            start = time.perf_counter()
            shorts[steps] = (short_fit_cost(encoder, index, image, steps), time.perf_counter() - start)
        saved = encoder._intra_state()
        start = time.perf_counter()
        result = encoder._intra_rd(index, image)
        seconds = time.perf_counter() - start
        i_sse, i_bits = encoder.intra_cost
        full = i_sse + encoder.lam * i_bits
        preference = encoder.settings.tuning.p_preference
        print(json.dumps({"frame": index, "p_over_full": round(p_cost / (preference * full), 4),
                          "full_over_short": {s: round(full / j, 4) for s, (j, _) in shorts.items()},
                          "full_s": round(seconds, 2),
                          "short_s": {s: round(t, 2) for s, (_, t) in shorts.items()}}), flush=True)
        if p_cost > preference * full:
            return result
        encoder._restore_intra_state(saved)
        return None

    gop.Encoder._real_intra_if_cheaper = logged
    print(encode_first_frames(args.clip, args.frames, args.quality, args.out, RDTuning(intra_trial_steps=0)))


if __name__ == "__main__":
    main()

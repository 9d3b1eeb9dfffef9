"""Bits per splat per parameter group of the frame coder at git revision BASE vs the working tree.

Usage: python bench/entropy_bits.py [--base 2d46301] [--frames 6] [--bpp 0.4] [--cache DIR]

Isolates the entropy coder exactly: every clip of ../shared/data/clips is encoded once (first
`--frames` frames, preset fast) by the gsvc_cli package of revision BASE through its CLI; the
records are decoded with BASE's frame coder (a subprocess on BASE's package, which also reports
BASE's bit accounting), and the same integers are re-encoded with this tree's frame coder (the
I-frame steps, survivors, changes and new splats are those of the file). Every re-encoded frame
is decoded again and must reproduce the encoder's integers exactly. Prints, per clip, bits per
splat of I- and P-frames by group (structure, means, chol, colors, side, total) before and after.

BASE must write I- and P-frames only (format 3.0 or older, before M-frames): an M-frame's streams
may repeat models from the coding memory (format 10.0), which neither side here keeps, and its
payload holds no splat state to re-encode. Such a file stops the script with a one-line message.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bitexact import CLIPS, checkout  # noqa: E402

from gsvc_cli.codec.bitstream.frame_coding import (  # noqa: E402
    GROUPS,
    decode_frame,
    encode_inter_frame,
    encode_intra_frame,
)
from gsvc_cli.codec.bitstream.quantise import QuantisedSplats, QuantSteps  # noqa: E402

COLUMNS = (*GROUPS, "side", "total")

_DUMP = """
import pickle, sys
from gsvc_cli.codec.bitstream.container import GsvcReader
from gsvc_cli.codec.bitstream.frame_coding import decode_frame
frames, prev = [], None
with GsvcReader(sys.argv[1]) as gsvc:
    for k, record in gsvc.frames():
        if record.frame_type not in ("I", "P"):  # refused by recode
            frames.append(dict(type=record.frame_type))
            continue
        f = decode_frame(record.payload, prev if record.frame_type == "P" else None)
        frames.append(dict(type=f.frame_type, values=f.splats.as_array(), kept=f.kept.numpy(),
                           steps=f.steps.as_tuple() if f.steps else None,
                           bits=f.stats.bits_by_group(), payload_bits=f.stats.payload_bits))
        prev = f.splats
pickle.dump(frames, open(sys.argv[2], "wb"))
"""


def old_frames(base_dir: Path, gsvc: Path) -> list[dict]:
    """Decode `gsvc` with the frame coder of the package in `base_dir` (integers + its accounting)."""
    out = gsvc.with_suffix(".pkl")
    env = {**os.environ, "PYTHONPATH": str(base_dir)}
    subprocess.run([sys.executable, "-c", _DUMP, str(gsvc), str(out)], check=True, env=env,
                   cwd=tempfile.gettempdir())
    with open(out, "rb") as f:
        return pickle.load(f)


def recode(frames: list[dict]) -> list[dict]:
    """Re-encode the decoded integers with this tree's coder; check decode == encode per frame."""
    result = []
    prev_new: QuantisedSplats | None = None
    new_of_old = np.zeros(0, dtype=np.int64)  # previous frame: old decoded index -> new index
    steps = None
    for f in frames:
        if f["type"] not in ("I", "P"):
            raise SystemExit(f"{f['type']}-frame in the BASE file: this comparison takes I- and P-frames "
                             "only (a BASE of format 3.0 or older)")
        values = f["values"]
        if f["type"] == "I":
            steps = QuantSteps.from_tuple(f["steps"])
            q = QuantisedSplats.from_array(values)
            coded = encode_intra_frame(q, steps)
            order = coded.order.numpy()
            cur_new = q.select(coded.order)
            decoded = decode_frame(coded.payload, None)
        else:
            assert prev_new is not None
            kept_old = f["kept"]
            n_kept = len(kept_old)
            kept_new = new_of_old[kept_old]
            perm = np.argsort(kept_new, kind="stable")  # survivors in increasing new index
            rows = np.concatenate([perm, np.arange(n_kept, len(values))])
            q = QuantisedSplats.from_array(values[rows])
            coded = encode_inter_frame(q, prev_new, torch.from_numpy(kept_new[perm]))
            order = rows[coded.order.numpy()]
            cur_new = q.select(coded.order)
            decoded = decode_frame(coded.payload, prev_new)
        if not decoded.splats.equal(cur_new):
            raise SystemExit("decoded integers differ from the encoder's: coder is broken")
        new_of_old = np.empty(len(order), dtype=np.int64)
        new_of_old[order] = np.arange(len(order))
        prev_new = cur_new
        result.append(dict(type=f["type"], n=len(values), bits=coded.stats.bits_by_group(),
                           payload_bits=coded.stats.payload_bits))
    return result


def per_splat(frames: list[dict], frame_type: str) -> dict[str, float] | None:
    chosen = [f for f in frames if f["type"] == frame_type]
    n = sum(len(f["values"]) if "values" in f else f["n"] for f in chosen)
    if not chosen or n == 0:
        return None
    out = {g: sum(f["bits"][g] for f in chosen) / n for g in (*GROUPS, "side")}
    out["total"] = sum(f["payload_bits"] for f in chosen) / n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="2d46301")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--bpp", default="0.4")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "gsvc_entropy_bits")
    parser.add_argument("--clips", nargs="*", default=None, help="clip file names (default: all)")
    args = parser.parse_args()
    cache = args.cache / args.base
    base_dir = cache / "pkg"
    if not (base_dir / "gsvc_cli").exists():
        base_dir.mkdir(parents=True, exist_ok=True)
        checkout(args.base, base_dir)
    clips = sorted(p for p in CLIPS.iterdir() if p.suffix in (".mp4", ".y4m"))
    if args.clips:
        clips = [p for p in clips if p.name in args.clips]
    print(f"bits per splat by group, {args.base} -> working tree "
          f"(first {args.frames} frames, preset fast, --bpp {args.bpp})")
    header = "| clip | frames | " + " | ".join(COLUMNS) + " |"
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 2))
    totals: dict[str, list[float]] = {}
    for clip in clips:
        gsvc = cache / f"{clip.stem}_{args.frames}f_{args.bpp}.gsvc"
        if not gsvc.exists():
            env = {**os.environ, "PYTHONPATH": str(base_dir)}
            subprocess.run([sys.executable, "-m", "gsvc_cli", "encode", str(clip), "-o", str(gsvc),
                            "--preset", "fast", "--frames", str(args.frames), "--bpp", args.bpp,
                            "-y", "-q"], check=True, env=env, cwd=tempfile.gettempdir())
        before = old_frames(base_dir, gsvc)
        after = recode(before)
        for frame_type in ("I", "P"):
            b, a = per_splat(before, frame_type), per_splat(after, frame_type)
            if b is None or a is None:
                continue
            count = sum(f["type"] == frame_type for f in before)
            cells = " | ".join(f"{b[c]:.2f} → {a[c]:.2f}" for c in COLUMNS)
            print(f"| {clip.stem} | {count} {frame_type} | {cells} |", flush=True)
            totals.setdefault(frame_type, []).append(a["total"] / b["total"])
    for frame_type, ratios in totals.items():
        print(f"{frame_type}-frames: mean total after/before = {np.mean(ratios):.3f}")


if __name__ == "__main__":
    main()

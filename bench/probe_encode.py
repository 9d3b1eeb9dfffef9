"""The encode the probes in bench/ watch: the first frames of a clip at preset fast and constant
quality, in this process (so that a probe's patched encoder methods are the ones that run)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from gsvc_cli.codec.encoder import gop
from gsvc_cli.codec.encoder.rate_control import RateTarget
from gsvc_cli.codec.encoder.rd import RDTuning
from gsvc_cli.video import open_video


def probe_arguments(doc: str, out_name: str) -> argparse.ArgumentParser:
    """A probe's command line: CLIP FRAMES QUALITY [--out OUT.gsvc]; the probe adds its own options."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("frames", type=int)
    parser.add_argument("quality", type=float)
    parser.add_argument("--out", type=Path, default=Path(out_name))
    return parser


def encode_first_frames(clip: Path, frames: int, quality: float, out: Path,
                        tuning: RDTuning | None = None) -> str:
    """Encode the first `frames` frames of `clip` into `out` on one thread; returns a line: bytes,
    dB, seconds."""
    torch.set_num_threads(1)
    with open_video(clip) as reader:
        info = reader.info
        head = [frame for _, frame in zip(range(frames), reader, strict=False)]
    settings = gop.EncoderSettings(RateTarget(quality=quality), "fast", tuning=tuning or RDTuning())
    start = time.perf_counter()
    summary = gop.encode_video(iter(head), info.with_(frame_count=len(head)), out, settings,
                               frame_count=len(head), overwrite=True)
    return (f"{clip.name} Q {quality}: {summary.file_bytes} bytes, {summary.mean_psnr:.3f} dB, "
            f"{time.perf_counter() - start:.1f} s")

"""Why P-frames cost so much: how well the previous frame's splats, moved or not, explain the next frame.

Usage: PYTHONPATH=. python bench/warm_start.py CLIP [--quality 27] [--start 0] [--frames 3]

Fits frame START as the constant-quality encoder's I-frame (preset fast), then for each of the next
FRAMES frames prints the weighted PSNR (YUV 6:1:1, the fitting space) of the I-frame's splats laid
on that frame:
  - zero:        unmoved (what the warm start is when no motion passes the encoder's rule);
  - field:       moved by the encoder's block motion (rendered splats -> frame, smoothed);
  - negated:     the same field with its sign flipped (a check of the convention: must be worse);
  - src field:   moved by block motion measured between the two source frames (smoothed);
  - src raw:     the same, unsmoothed;
and, for comparison, what block motion does in the pixel domain (the source frame START moved block
by block onto the frame, luma PSNR, against zero motion): the prediction a classic codec starts from.
Then the I-frame's colour statistics (share of negative values per channel, mean and largest
magnitude) and its median splat scale, which explain the gap: overlapping splats whose colours
cancel stop cancelling when neighbours move by different vectors.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from gsvc_cli.codec.bitstream.motion_vectors import MotionVectors
from gsvc_cli.codec.bitstream.quantise import dequantise
from gsvc_cli.codec.encoder import gop
from gsvc_cli.codec.encoder.gop import Encoder, EncoderSettings
from gsvc_cli.codec.encoder.inter_fit import MOTION_BLOCK, _moved, field_vectors
from gsvc_cli.codec.encoder.loss import loss_weights, weighted_psnr
from gsvc_cli.codec.encoder.motion import block_motion, translated
from gsvc_cli.codec.encoder.rate_control import RateTarget
from gsvc_cli.codec.splats import render_splats
from gsvc_cli.video import open_video


def pixel_block_prediction(reference: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """reference [H,W] moved onto image block by block (integer vectors of `block_motion`)."""
    field = block_motion(reference, image, MOTION_BLOCK)
    out = torch.empty_like(image)
    spacing = field.spacing
    for by in range(field.vectors.shape[0]):
        for bx in range(field.vectors.shape[1]):
            dx, dy = (int(round(float(v))) for v in field.vectors[by, bx])
            moved = translated(reference, dx, dy)
            rows, cols = slice(by * spacing, (by + 1) * spacing), slice(bx * spacing, (bx + 1) * spacing)
            out[rows, cols] = moved[rows, cols]
    return out


def luma_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / max(float(((a - b) ** 2).mean()), 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--quality", type=float, default=27.0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--frames", type=int, default=3)
    args = parser.parse_args()
    with open_video(args.clip) as reader:
        info = reader.info
        frames = [f for _, f in zip(range(args.start + args.frames + 1), reader, strict=False)][args.start:]
    encoder = Encoder(info, EncoderSettings(RateTarget(quality=args.quality), "fast"), len(frames), 0)
    first = frames[0].to_yuv444_float()
    _, reference, _ = encoder._intra_rd(0, first)
    steps = encoder.steps
    weights = loss_weights(gop.CHANNEL_WEIGHTS, "cpu")
    splats = dequantise(reference.q, steps, "cpu")
    rendered = render_splats(splats, info.height, info.width)
    print(f"{args.clip.name}: frame {args.start} as an I-frame at Q {args.quality:g}: "
          f"{len(reference.q)} splats, {weighted_psnr(rendered.clamp(0, 1), first, weights):.2f} dB weighted")

    def moved_psnr(vectors: MotionVectors, image: torch.Tensor) -> float:
        moved = dequantise(_moved(reference.q, vectors), steps, "cpu")
        return weighted_psnr(render_splats(moved, info.height, info.width).clamp(0, 1), image, weights)

    for k in range(1, len(frames)):
        image = frames[k].to_yuv444_float()
        estimate = block_motion(rendered[0], image[0], MOTION_BLOCK)
        field = field_vectors(estimate.vectors, estimate.spacing, steps)
        source = block_motion(first[0], image[0], MOTION_BLOCK)
        src_field = field_vectors(source.vectors, source.spacing, steps)
        raw_units = np.round(source.vectors.numpy() / steps.mean).astype(np.int64)
        src_raw = MotionVectors(raw_units, src_field.cell)
        zero = weighted_psnr(rendered.clamp(0, 1), image, weights)
        print(f"  frame {args.start + k}: splats zero {zero:.2f}, field {moved_psnr(field, image):.2f}, "
              f"negated {moved_psnr(MotionVectors(-field.vectors, field.cell), image):.2f}, "
              f"src field {moved_psnr(src_field, image):.2f}, src raw {moved_psnr(src_raw, image):.2f} | "
              f"pixels (luma, from frame {args.start}): zero {luma_psnr(first[0], image[0]):.2f}, "
              f"block motion {luma_psnr(pixel_block_prediction(first[0], image[0]), image[0]):.2f}")
    colors = splats.colors
    negative = ", ".join(f"{float((colors[:, c] < 0).float().mean()):.0%}" for c in range(3))
    print(f"  colours (Y, U, V): negative {negative}; mean |c| "
          f"{', '.join(f'{float(v):.3f}' for v in colors.abs().mean(0))}; largest "
          f"{', '.join(f'{float(v):.2f}' for v in colors.abs().max(0).values)}; median splat scale "
          f"{float(splats.chol[:, [0, 2]].abs().median()):.1f} px")


if __name__ == "__main__":
    main()

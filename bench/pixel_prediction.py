"""Would P-frames predicted in the pixel domain beat splats carried over from the previous frame?

Usage: PYTHONPATH=. python bench/pixel_prediction.py CLIP [--quality 27 30 33 36] [--frames 10]
       [--precision 1]

A probe for issue #9, not a codec: every scheme starts from the same I-frame (the constant-quality
encoder's, preset fast) and codes the next FRAMES frames at the same lambda:

  splats (today's encoder): `Encoder.encode`, the previous splats moved, changed, pruned and added
      to by RD (it may still choose an I-frame where that costs less).
  pixels@P: the previous *decoded output frame* (4:2:0 codes, read back as 4:4:4) moved block by
      block (16x16 blocks, vectors searched on luma between that frame and the source, rounded to
      P pixels, bilinear), plus a fresh set of splats fitted to what the prediction misses; their
      count is the one of least J = D + lambda R (R: the motion field's coded bits and the residual
      splats coded as an I-frame at the I-frame's steps; 0 splats allowed). Nothing of the
      previous frame's splats is carried.
  alternate: every other frame by today's encoder (which then sees frames 0, 2, 4, ...: its splats
      follow two frames of motion), the frames between them predicted in the pixel domain as above
      (whole-pixel vectors) from the frame before: a splat state refreshed every second frame, and
      cheap pixel frames that never build on each other.
  delta: the previous decoded output moved block by block (whole-pixel vectors searched on that
      output), plus what today's P-frame changes in the splats: decoded = prediction + render(new
      splats) - render(previous splats moved by the same field). The encoder's own P-frame RD
      (`Encoder._inter_rd`) fits the splats to image - prediction + render(moved splats), so an
      unchanged splat costs ~0 bits and adds nothing, a changed one codes its difference, and the
      splat set persists from frame to frame as today.

All are measured the same way: bits of each frame (payload + record overhead), and the weighted
PSNR (YUV 6:1:1) of the decoded output frame (through the real 4:2:0 conversion) against the source
in the fitting space. Prints per-frame rows and, over the qualities, each scheme's curve (whole
sequence, and the P-frames alone) with its BD-rate against today's encoder.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gsvc_cli.codec.bitstream.container import record_overhead
from gsvc_cli.codec.bitstream.frame_coding import encode_intra_frame, motion_field_bits
from gsvc_cli.codec.bitstream.motion_vectors import MotionVectors
from gsvc_cli.codec.bitstream.quantise import dequantise, quantise
from gsvc_cli.codec.encoder import gop
from gsvc_cli.codec.encoder.densify import colour_gradient
from gsvc_cli.codec.encoder.gop import CHANNEL_WEIGHTS, Encoder, EncoderSettings
from gsvc_cli.codec.encoder.inter_fit import MOTION_BLOCK, WarmStart, _moved, field_vectors
from gsvc_cli.codec.encoder.loss import loss_weights, weighted_psnr
from gsvc_cli.codec.encoder.motion import block_motion
from gsvc_cli.codec.encoder.rate_control import RateTarget
from gsvc_cli.codec.encoder.rd import weighted_sse
from gsvc_cli.codec.splats import render_splats
from gsvc_cli.video import Frame, VideoInfo, open_video

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bdrate import bd_rate  # noqa: E402

BLOCK = 16


def output_image(decoded: torch.Tensor, info: VideoInfo) -> torch.Tensor:
    """What the decoder writes (4:2:0 codes), read back as [0,1] YUV 4:4:4."""
    return Frame.from_yuv444_float(decoded.clamp(0, 1), info).to_yuv444_float()


def predict(reference: torch.Tensor, image: torch.Tensor, precision: float
            ) -> tuple[torch.Tensor, int]:
    """reference [3,H,W] moved block by block onto image; returns (prediction, motion bits)."""
    _, height, width = image.shape
    field = block_motion(reference[0], image[0], BLOCK)
    units = torch.round(field.vectors / precision)
    vectors = units * precision  # [gh, gw, 2] px
    per_pixel = vectors.repeat_interleave(field.spacing, 0).repeat_interleave(field.spacing, 1)
    moved = sample(reference, per_pixel[:height, :width])
    bits = motion_field_bits(MotionVectors(units.numpy().astype(np.int64), field.spacing))
    return moved, bits


def code_residual(encoder: Encoder, image: torch.Tensor, prediction: torch.Tensor, motion_bits: int,
                  seed: int) -> tuple[torch.Tensor, int, int]:
    """The residual splat count of least J, grown from a few by doublings while J falls.
    Returns (decoded 4:4:4 float image, bits, splats)."""
    assert encoder.lam is not None
    height, width = image.shape[1:]
    weights = encoder.weights
    residual = image - prediction
    overhead = 8 * record_overhead()
    best = (weighted_sse(prediction, image, weights) + encoder.lam * (motion_bits + overhead),
            prediction, motion_bits + overhead, 0)
    count = max(4, (encoder.intra_count or 1000) // 64)
    while True:
        splats, _ = encoder._fit(residual, count, None, encoder.preset.intra, seed, None)
        splats, _ = encoder._fit(residual, count, splats, encoder.preset.fine_tune, seed, encoder.steps)
        q = quantise(splats, encoder.steps)
        coded = encode_intra_frame(q, encoder.steps)
        decoded = prediction + render_splats(dequantise(q, encoder.steps), height, width)
        bits = motion_bits + overhead + 8 * len(coded.payload)
        cost = weighted_sse(decoded, image, weights) + encoder.lam * bits
        if cost >= best[0]:
            break
        best = (cost, decoded, bits, count)
        count *= 2
    return best[1], best[2], best[3]


def sample(reference: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """reference [3,H,W] read at p - shift(p) (shift [H,W,2] px), bilinear, edges replicated."""
    _, height, width = reference.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    sx, sy = xs - shift[..., 0], ys - shift[..., 1]
    grid = torch.stack([(2 * sx + 1) / width - 1, (2 * sy + 1) / height - 1], dim=-1)[None]
    return F.grid_sample(reference[None], grid, mode="bilinear", padding_mode="border",
                         align_corners=False)[0]


def unclamped_sse(rendered: torch.Tensor, image: torch.Tensor, weights: torch.Tensor) -> float:
    return float((((rendered - image) ** 2).sum(dim=(1, 2)) * weights).sum())


def delta_frame(encoder: Encoder, index: int, image: torch.Tensor, reference: torch.Tensor
                ) -> tuple[torch.Tensor, int, int]:
    """One P-frame of the 'delta' scheme; returns (decoded 4:4:4 image, bits, splats)."""
    assert encoder.reference is not None and encoder.prev_luma is not None
    height, width = image.shape[1:]
    steps = encoder.steps
    field = block_motion(reference[0], image[0], MOTION_BLOCK)
    whole = torch.round(field.vectors)
    vectors = field_vectors(whole, field.spacing, steps, smoothing=0)
    moved_q = _moved(encoder.reference.q, vectors)
    moved = dequantise(moved_q, steps, "cpu")
    per_block = whole.repeat_interleave(field.spacing, 0).repeat_interleave(field.spacing, 1)
    prediction = sample(reference, per_block[:height, :width])
    warm_render = render_splats(moved, height, width)
    target = image - prediction + warm_render
    rendered, wt_r = colour_gradient(moved, target)
    psnr = -10 * math.log10(max(unclamped_sse(rendered, target, encoder.weights) / (height * width), 1e-12))
    warm = WarmStart(moved_q, moved, rendered, wt_r, psnr, psnr, (0.0, 0.0), "local", vectors)
    saved = gop.weighted_sse
    gop.weighted_sse = unclamped_sse  # the target leaves [0, 1]; the clamp belongs to the output
    try:
        coded, result, _, _ = encoder._inter_rd(index, target, warm)
    finally:
        gop.weighted_sse = saved
    encoder.reference = result
    encoder.prev_luma = image[0]
    decoded = prediction + render_splats(result.splats, height, width) - warm_render
    return decoded.clamp(0, 1), 8 * (len(coded.payload) + record_overhead()), len(result.q)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--quality", type=float, nargs="+", default=[27.0, 30.0, 33.0, 36.0])
    parser.add_argument("--frames", type=int, default=10, help="P-frames after the I-frame")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--precision", type=float, nargs="+", default=[1.0],
                        help="motion vector units to try, pixels")
    args = parser.parse_args()
    with open_video(args.clip) as reader:
        info = reader.info
        frames = [f for _, f in zip(range(args.start + args.frames + 1), reader, strict=False)][args.start:]
    weights = loss_weights(CHANNEL_WEIGHTS, "cpu")
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for quality in args.quality:
        settings = EncoderSettings(RateTarget(quality=quality), "fast", gop=len(frames))
        splat_enc = Encoder(info, settings, len(frames), 0)
        pixel_encs = {p: Encoder(info, settings, len(frames), 0) for p in args.precision}
        references: dict[float | str, torch.Tensor] = {}
        rows: dict[str, list[tuple[str, int, float, int, float]]] = {"splats": []}
        rows.update({f"pixels@{p:g}": [] for p in args.precision})
        alt_enc = Encoder(info, settings, len(frames), 0)
        rows["alternate"] = []
        delta_enc = Encoder(info, settings, len(frames), 0)
        rows["delta"] = []
        for k, frame in enumerate(frames):
            image = frame.to_yuv444_float()
            t0 = time.perf_counter()
            _, rep, decoded = splat_enc.encode(args.start + k, frame)
            rows["splats"].append((rep.frame_type, rep.bits,
                                   weighted_psnr(output_image(decoded, info), image, weights),
                                   rep.n_splats, time.perf_counter() - t0))
            for precision, enc in pixel_encs.items():
                t0 = time.perf_counter()
                if k == 0:
                    _, rep, decoded = enc.encode(args.start + k, frame)
                    kind, bits, count = "I", rep.bits, rep.n_splats
                else:
                    prediction, motion_bits = predict(references[precision], image, precision)
                    decoded, bits, count = code_residual(enc, image, prediction, motion_bits, args.start + k)
                    kind = "P"
                references[precision] = output_image(decoded, info)
                rows[f"pixels@{precision:g}"].append(
                    (kind, bits, weighted_psnr(references[precision], image, weights), count,
                     time.perf_counter() - t0))
            t0 = time.perf_counter()
            if k % 2 == 0:
                _, rep, decoded = alt_enc.encode(args.start + k, frame)
                kind, bits, count = rep.frame_type, rep.bits, rep.n_splats
            else:
                prediction, motion_bits = predict(references["alternate"], image, 1.0)
                decoded, bits, count = code_residual(alt_enc, image, prediction, motion_bits, args.start + k)
                kind = "p"
            references["alternate"] = output_image(decoded, info)
            alt_psnr = weighted_psnr(references["alternate"], image, weights)
            rows["alternate"].append((kind, bits, alt_psnr, count, time.perf_counter() - t0))
            t0 = time.perf_counter()
            if k == 0:
                _, rep, decoded = delta_enc.encode(args.start + k, frame)
                kind, bits, count = rep.frame_type, rep.bits, rep.n_splats
            else:
                decoded, bits, count = delta_frame(delta_enc, args.start + k, image, references["delta"])
                kind = "P"
            references["delta"] = output_image(decoded, info)
            rows["delta"].append((kind, bits, weighted_psnr(references["delta"], image, weights), count,
                                  time.perf_counter() - t0))
            print(f"Q {quality:g} frame {args.start + k}: " + " | ".join(
                f"{name} {r[-1][0]} {r[-1][1]:6d} b {r[-1][2]:5.2f} dB {r[-1][3]:4d} spl {r[-1][4]:4.1f}s"
                for name, r in rows.items()), flush=True)
        for name, r in rows.items():
            for span, part in (("whole", r), ("P only", r[1:])):
                mse = np.mean([10 ** (-x[2] / 10) for x in part])
                curves.setdefault(span, {}).setdefault(name, []).append(
                    (float(sum(x[1] for x in part)), -10 * math.log10(mse)))
    print("\nspan | scheme | (bits, PSNR) per quality | BD-rate vs splats")
    for span, by_scheme in curves.items():
        for name, curve in by_scheme.items():
            bd = bd_rate(by_scheme["splats"], curve) if name != "splats" and len(curve) >= 4 else None
            points = ", ".join(f"({b:.0f}, {p:.2f})" for b, p in curve)
            print(f"{span} | {name} | {points} | {'-' if bd is None else f'{bd:+.1f}%'}")


if __name__ == "__main__":
    main()

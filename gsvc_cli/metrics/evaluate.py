"""Compare a distorted video with its reference, frame by frame: the core of `gsvc eval`.

Frames are decoded once, in two prefetch threads (FFmpeg releases the GIL), streamed to a
parallel libvmaf process, and scored in torch by a pool of worker threads (one frame each, torch
releases the GIL too). Memory stays bounded by a few frames.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsvc_cli.errors import UsageError
from gsvc_cli.metrics.psnr import frame_psnr
from gsvc_cli.metrics.ssim import block_ssim, ms_ssim, ms_ssim_scales
from gsvc_cli.metrics.vmaf import VmafRunner
from gsvc_cli.progress import ProgressCallback, report
from gsvc_cli.video import Frame, VideoInfo, VideoReader, open_video
from gsvc_cli.video.colour import _matrix, _range_scale, upsample_chroma

METRICS = ("psnr", "ssim", "msssim", "vmaf")
_MAX_WORKERS = 4  # frames scored at once: each holds ~150 MB of float maps at 1080p
DEFAULT_METRICS = ("psnr", "msssim", "vmaf")


@dataclass
class EvalResult:
    """Per-frame figures and their means.

    frames: one dict per frame pair, e.g. {"frame": 0, "psnr_y": 38.2, ..., "vmaf": 93.1};
    PSNR in dB, SSIM/MS-SSIM in [0, 1], VMAF in [0, 100]. mean: arithmetic mean of each figure
    over frames. columns: the figure names in display order.
    """

    reference: VideoInfo
    distorted: VideoInfo
    metrics: tuple[str, ...]
    columns: list[str]
    frames: list[dict[str, float]] = field(default_factory=list)
    mean: dict[str, float] = field(default_factory=dict)
    msssim_scales: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: inputs, means and per-frame values."""

        def describe(info: VideoInfo) -> dict[str, Any]:
            return {"path": str(info.path), "width": info.width, "height": info.height,
                    "fps": str(info.fps), "pix_fmt": info.pix_fmt,
                    "color_matrix": info.color_matrix, "color_range": info.color_range}

        return {"reference": describe(self.reference), "distorted": describe(self.distorted),
                "frame_count": len(self.frames), "metrics": list(self.metrics),
                "msssim_scales": self.msssim_scales, "mean": self.mean, "frames": self.frames}


def parse_metrics(text: str | Sequence[str]) -> tuple[str, ...]:
    """'psnr,msssim' -> ('psnr', 'msssim'); unknown names are a UsageError."""
    names = [n.strip().lower().replace("-", "") for n in
             (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise UsageError("--metrics: name at least one of " + ", ".join(METRICS))
    for n in names:
        if n not in METRICS:
            raise UsageError(f"--metrics: unknown metric {n!r} (choose from {', '.join(METRICS)})")
    return tuple(dict.fromkeys(names))


def _columns(metrics: tuple[str, ...], info: VideoInfo) -> list[str]:
    fmt = info.fmt
    yuv = fmt.rgb or fmt.planes == 3
    cols: list[str] = []
    if "psnr" in metrics:
        cols += ["psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "psnr_rgb"] if yuv else ["psnr_y", "psnr_rgb"]
    if "ssim" in metrics:
        cols += ["ssim_y"]
    if "msssim" in metrics:
        cols += ["msssim_y", "msssim_rgb"]
    if "vmaf" in metrics:
        cols += ["vmaf"]
    return cols


def _prefetch(reader: VideoReader, depth: int = 3) -> Iterator[Frame]:
    """Decode `reader` in a background thread, `depth` frames ahead."""
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for frame in reader:
                if stop.is_set():
                    return
                items.put(frame)
            items.put(done)
        except BaseException as exc:
            items.put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                items.get_nowait()
        thread.join(timeout=5)


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Run torch with `count` intra-op threads, then restore. Evaluation parallelises over frames
    instead (one frame per worker thread; torch releases the GIL): small ops on many threads
    cost more in synchronisation than they gain, and decoding and libvmaf need cores too."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_pair(ref: VideoInfo, dist: VideoInfo, frames: int | None) -> int | None:
    """Refuse pairs that cannot be compared; return how many frames to compare (None: all)."""
    if (ref.width, ref.height) != (dist.width, dist.height):
        raise UsageError(f"{dist.path}: size {dist.width}x{dist.height} differs from the reference "
                         f"{ref.path} ({ref.width}x{ref.height})")
    if frames is None and None not in (ref.frame_count, dist.frame_count) \
            and ref.frame_count != dist.frame_count:
        raise UsageError(f"{dist.path}: has {dist.frame_count} frames but the reference {ref.path} has "
                         f"{ref.frame_count} (use --frames N to compare the first N)")
    return frames


def evaluate(ref_path: Path | str, dist_path: Path | str, metrics: Sequence[str] = DEFAULT_METRICS,
             frames: int | None = None, progress: ProgressCallback | None = None, *,
             start: int = 0, ref_options: dict[str, Any] | None = None,
             dist_options: dict[str, Any] | None = None) -> EvalResult:
    """Score `dist_path` against `ref_path` (any formats open_video reads).

    metrics: any of "psnr", "ssim" (8x8 block SSIM on Y, as ffmpeg's), "msssim" (Y and RGB),
    "vmaf" (vmaf_v0.6.1). frames: compare only the first N (after `start`); without it the frame
    counts must match. ref/dist_options: extra open_video keywords (size/fps/pix_fmt for raw
    .yuv). DIST frames are converted to REF's pixel format and colour description if they differ.
    Reports progress as stage "eval" with the running PSNR-Y / VMAF-free figures in `info`.
    """
    metrics = parse_metrics(metrics)
    with contextlib.ExitStack() as stack:
        workers = max(1, min(_MAX_WORKERS, os.cpu_count() or 1))
        stack.enter_context(_torch_threads(1))
        ref_reader = stack.enter_context(open_video(ref_path, start=start, frames=frames,
                                                    **(ref_options or {})))
        dist_reader = stack.enter_context(open_video(dist_path, start=start, frames=frames,
                                                     **(dist_options or {})))
        ref_info, dist_info = ref_reader.info, dist_reader.info
        _check_pair(ref_info, dist_info, frames)
        total = frames
        if total is None:
            total = ref_info.frame_count if ref_info.frame_count is not None else dist_info.frame_count
        elif None not in (ref_info.frame_count, dist_info.frame_count):
            total = min(frames, ref_info.frame_count, dist_info.frame_count)  # type: ignore[type-var]
        result = EvalResult(ref_info, dist_info, metrics, _columns(metrics, ref_info))
        vmaf = None
        if "vmaf" in metrics:
            vmaf_info = ref_info if not ref_info.fmt.rgb else ref_info.with_(pix_fmt="yuv444p")
            vmaf = stack.enter_context(VmafRunner(vmaf_info, threads=max(1, (os.cpu_count() or 2) // 2)))
        if "msssim" in metrics:
            result.msssim_scales = ms_ssim_scales(ref_info.height, ref_info.width)
            if result.msssim_scales == 0:
                raise UsageError(f"{ref_path}: {ref_info.width}x{ref_info.height} is too small for MS-SSIM "
                                 "(needs 11x11); drop it with --metrics")
        ref_iter = _prefetch(ref_reader)
        dist_iter = _prefetch(dist_reader)
        stack.callback(ref_iter.close)
        stack.callback(dist_iter.close)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gsvc-eval")
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        pending: collections.deque[Future[dict[str, float]]] = collections.deque()
        count = 0

        def collect() -> None:  # the oldest pending frame, so rows stay in order
            row = {"frame": float(start + len(result.frames)), **pending.popleft().result()}
            result.frames.append(row)
            shown = {k: row[k] for k in ("psnr_y", "msssim_y", "ssim_y") if k in row}
            report(progress, "eval", len(result.frames), total, **shown)

        while frames is None or count < frames:
            ref_frame = next(ref_iter, None)
            dist_frame = next(dist_iter, None)
            if ref_frame is None and dist_frame is None:
                break
            if ref_frame is None or dist_frame is None:
                short, other = (ref_path, dist_path) if ref_frame is None else (dist_path, ref_path)
                raise UsageError(f"{short}: ends after {count} frames, before {other} "
                                 "(use --frames N to compare the first N)")
            dist_frame = dist_frame.convert(ref_info)
            if vmaf is not None:  # first, so libvmaf works while this frame is scored here
                if ref_info.fmt.rgb:
                    yuv_info = ref_info.with_(pix_fmt="yuv444p")
                    vmaf.add(ref_frame.convert(yuv_info), dist_frame.convert(yuv_info))
                else:
                    vmaf.add(ref_frame, dist_frame)
            pending.append(pool.submit(_score, ref_frame, dist_frame, metrics, ref_info))
            count += 1
            if len(pending) > workers:
                collect()
        while pending:
            collect()
        if count == 0:
            raise UsageError(f"{ref_path}: no frames to compare")
        if frames is not None and count < frames:
            raise UsageError(f"--frames {frames}: {ref_path} or {dist_path} has only {count} frames "
                             f"from --start {start}")
        if vmaf is not None:
            report(progress, "vmaf", 0, None)
            for row, score in zip(result.frames, vmaf.finish(), strict=True):
                row["vmaf"] = score
        for row in result.frames:
            row["frame"] = int(row["frame"])
        result.mean = {c: sum(r[c] for r in result.frames) / count for c in result.columns}
        return result


def _y_and_rgb(frame: Frame) -> torch.Tensor:
    """[4, H, W] float32: Y as code value / peak, then R, G, B in [0, 1].

    RGB equals frame.to_rgb_float() up to float rounding, for a fraction of the cost on YUV: the
    range and offset scaling happens at chroma resolution (bilinear upsampling is affine, so the
    order does not matter), and each RGB plane is at most three passes written in place.
    """
    fmt = frame.fmt
    peak = float(fmt.peak)
    if fmt.rgb or fmt.planes != 3:
        y = frame.to_yuv444_float()[0] if fmt.rgb else torch.from_numpy(frame.y.astype(np.float32)) / peak
        return torch.cat((y[None], frame.to_rgb_float()))
    height, width = frame.height, frame.width
    y_off, y_span, c_off, c_span = _range_scale(frame.color_range, fmt.bits)
    matrix = _matrix(frame.color_matrix, torch.float64).tolist()
    out = torch.empty(4, height, width)
    luma = torch.from_numpy(frame.y.astype(np.float32))
    torch.mul(luma, 1.0 / peak, out=out[0])
    luma.sub_(y_off).mul_(1.0 / y_span)

    def chroma(plane: np.ndarray) -> torch.Tensor:
        c = torch.from_numpy(plane.astype(np.float32)).sub_(c_off).mul_(1.0 / c_span)
        return upsample_chroma(c, fmt.shift_x, fmt.shift_y, height, width)

    cb, cr = chroma(frame.u), chroma(frame.v)
    for plane, (k_y, k_cb, k_cr) in zip(out[1:], matrix, strict=True):
        torch.mul(luma, k_y, out=plane)
        for k, c in ((k_cb, cb), (k_cr, cr)):
            if k != 0.0:
                plane.add_(c, alpha=k)
    out[1:].clamp_(0.0, 1.0)
    return out


@torch.inference_mode()
def _score(ref: Frame, dist: Frame, metrics: tuple[str, ...], info: VideoInfo) -> dict[str, float]:
    """All torch/numpy figures of one frame pair (VMAF is done elsewhere). Thread-safe."""
    row: dict[str, float] = {}
    fmt = info.fmt
    need_rgb = "psnr" in metrics or "msssim" in metrics
    # Y (normalised) and RGB, converted once and shared by PSNR-RGB and both MS-SSIMs
    stacks = (_y_and_rgb(ref), _y_and_rgb(dist)) if need_rgb else None
    if "psnr" in metrics:
        assert stacks is not None
        row.update(frame_psnr(ref, dist, (stacks[0][1:], stacks[1][1:])))
    if "ssim" in metrics:
        peak = float(fmt.peak if not fmt.rgb else 255)
        if fmt.rgb:
            ref_y = ref.to_yuv444_float()[0] * 255.0
            dist_y = dist.to_yuv444_float()[0] * 255.0
        else:  # uint8 planes stay integer: block_ssim's exact float32 path
            ref_y, dist_y = (torch.from_numpy(f.y.copy() if f.y.dtype == np.uint8 else f.y.astype(np.float32))
                             for f in (ref, dist))  # copy: decoded planes may be read-only
        row["ssim_y"] = block_ssim(ref_y, dist_y, peak)
    if "msssim" in metrics:
        assert stacks is not None
        values = ms_ssim(stacks[0], stacks[1], 1.0)[0]  # Y, R, G, B in one pass
        row["msssim_y"] = float(values[0])
        row["msssim_rgb"] = float(values[1:].mean())
    return row


def fps_text(fps: Fraction) -> str:
    """'25' or '30000/1001 (29.970)' for display."""
    return str(fps.numerator) if fps.denominator == 1 else f"{fps} ({float(fps):.3f})"

"""The encoder: frames -> fitted splats -> quantised integers -> entropy-coded .gsvc records.

GOP structure (GSVC, docs/FORMAT.md): an I-frame is fitted from scratch; each P-frame starts from
the previous frame's *decoded* splats (closed loop: the encoder reconstructs exactly what the
decoder will), adds new splats where the residual is largest, prunes the least useful, and is
fitted briefly with straight-through quantisation. Its payload codes deletions, integer deltas of
the survivors and the new splats, so a splat that did not move costs almost nothing.

Scene changes need no pre-pass: before a P-frame is fitted, the previous splats (shifted by the
global motion) are laid on the frame; when they explain it less than `scenecut_db` better than a
coarse block picture of the frame itself, the frame is coded as an I-frame and no P-fit is run.

Fitting happens in YUV 4:4:4 (code value / peak, chroma upsampled) with the codec's usual 6:1:1
weighting; the decoder renders YUV 4:4:4 and downsamples to the output's pixel format.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gsvc_cli.codec.bitstream.container import FileHeader, GsvcWriter, index_and_trailer_size, record_overhead
from gsvc_cli.codec.bitstream.frame_coding import CodedFrame, encode_inter_frame, encode_intra_frame
from gsvc_cli.codec.bitstream.quantise import QuantisedSplats, QuantSteps, dequantise, fake_quantise, quantise
from gsvc_cli.codec.encoder.fitting import fit_frame
from gsvc_cli.codec.encoder.inter_fit import WarmStart, fit_inter, warm_start
from gsvc_cli.codec.encoder.loss import weighted_psnr
from gsvc_cli.codec.encoder.presets import FitConfig, get_preset
from gsvc_cli.codec.encoder.rate_control import (
    MIN_SPLATS,
    FramePlan,
    RateController,
    RateTarget,
    revert_to_budget,
    search_step_scale,
)
from gsvc_cli.codec.splats import Splats, render_splats
from gsvc_cli.errors import InputError, UsageError
from gsvc_cli.metrics.psnr import frame_psnr
from gsvc_cli.progress import ProgressCallback, report
from gsvc_cli.video import Frame, VideoInfo

CHANNEL_WEIGHTS = (6.0, 1.0, 1.0)
ENCODER_NAME = "gsvc-encoder 1"
PSNR_MARGIN_DB = 0.3  # starting allowance for quantisation and chroma subsampling (--psnr)
PSNR_TOLERANCE_DB = 0.25
PSNR_SEARCH_FITS = 6
DB_PER_DOUBLING = 2.5  # typical PSNR gain per doubling of the splat count (measured on Kodak/CIF)


@dataclass(frozen=True)
class EncoderSettings:
    """How to encode. gop: longest GOP in frames (1 = all intra). scenecut_db: a P-frame whose warm
    start is less than this many dB (YUV 6:1:1) better than a coarse 40x40-pixel-block picture of the frame
    becomes an I-frame (a scene cut); 0 disables scene-cut detection."""

    target: RateTarget
    preset: str = "medium"
    gop: int = 60
    scenecut_db: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        get_preset(self.preset)  # a clear error for an unknown name
        if self.gop < 1:
            raise UsageError(f"--gop {self.gop}: must be at least 1")
        if self.scenecut_db < 0:
            raise UsageError(f"--scenecut {self.scenecut_db}: must be 0 (off) or more")


@dataclass
class FrameReport:
    """One coded frame. psnr: YUV 6:1:1 of the decoded output frame against the input (dB);
    psnr_fit: the fit's own PSNR (fitting space: 6:1:1 weighted over YUV 4:4:4), before quantisation
    for I-frames and after it for P-frames (which are fitted through the quantiser); quant_loss_db:
    for I-frames, what quantisation cost in that space (None for P-frames); bits: the whole record."""

    index: int
    frame_type: str
    n_splats: int
    n_new: int
    n_deleted: int
    bits: int
    psnr: float
    psnr_fit: float
    seconds: float
    scene_cut: bool = False
    bits_per_splat: dict[str, float] = field(default_factory=dict)
    quant_loss_db: float | None = None


@dataclass
class EncodeSummary:
    """The whole encode: per-frame reports and the file's real size."""

    path: Path
    width: int
    height: int
    frames: list[FrameReport]
    file_bytes: int
    seconds: float

    @property
    def bpp(self) -> float:
        return 8.0 * self.file_bytes / (self.width * self.height * max(1, len(self.frames)))

    @property
    def mean_psnr(self) -> float:
        return sum(f.psnr for f in self.frames) / max(1, len(self.frames))

    @property
    def mean_quant_loss_db(self) -> float | None:
        """Mean quantisation loss of the I-frames (dB), None without I-frame figures."""
        losses = [f.quant_loss_db for f in self.frames if f.quant_loss_db is not None]
        return sum(losses) / len(losses) if losses else None


@dataclass
class _Reference:
    """What the decoder will hold after a frame: its integers and their float splats."""

    q: QuantisedSplats
    splats: Splats


class Encoder:
    """Encodes frames one at a time into an open GsvcWriter (see `encode_video`)."""

    def __init__(self, info: VideoInfo, settings: EncoderSettings, frames: int,
                 overhead_bytes: int, progress: ProgressCallback | None = None) -> None:
        self.info = info
        self.settings = settings
        self.progress = progress  # receives the fitter's "fit" events (steps within a frame)
        self.height, self.width = info.height, info.width
        self.preset = get_preset(settings.preset)
        self.rate = RateController(settings.target, info.width, info.height, frames, settings.gop,
                                   overhead_bytes)
        self.steps = QuantSteps.default()
        self.reference: _Reference | None = None
        self.prev_psnr = 0.0
        self.gop_length = 0
        self.psnr_margin = PSNR_MARGIN_DB
        self.psnr_count: int | None = None  # --psnr: the last I-frame's splat count
        self.bits_per_splat_unit: float | None = None  # I-frame bits/splat at step scale 1

    # ------------------------------------------------------------------------------------------
    def encode(self, index: int, frame: Frame) -> tuple[CodedFrame, FrameReport, torch.Tensor]:
        """Code one frame; returns the payload, its report and the decoded YUV 4:4:4 image."""
        start = time.perf_counter()
        image = frame.to_yuv444_float()
        cut = False
        coded = None
        if self.reference is not None and self.gop_length < self.settings.gop:
            warm = warm_start(image, self.reference.q, self.steps, CHANNEL_WEIGHTS)
            cut = self._is_scene_cut(image, warm.psnr)
            if not cut:
                coded, result, fit_psnr = self._inter(index, image, warm, self._plan_inter(warm))
        if coded is None:
            coded, result, fit_psnr = self._intra(index, image, self.rate.plan_intra())
            self.gop_length = 0
        self.reference = result
        self.gop_length += 1
        decoded = render_splats(result.splats, self.height, self.width)
        self.prev_psnr = weighted_psnr(decoded, image, CHANNEL_WEIGHTS)
        output = Frame.from_yuv444_float(decoded, self.info, index)
        quality = frame_psnr(frame, output)
        out_psnr = quality.get("psnr_yuv", quality.get("psnr_y", 0.0))
        if self.settings.target.psnr is not None:  # learn what quantisation and 4:2:0 cost
            self.psnr_margin = min(3.0, max(0.0, self.psnr_margin + self.settings.target.psnr - out_psnr))
        bits = 8 * (len(coded.payload) + record_overhead())
        stats = coded.stats
        self.rate.record(coded.frame_type, bits, stats.n_splats,
                         self.bits_per_splat_unit if coded.frame_type == "I" else None)
        report_ = FrameReport(index, coded.frame_type, stats.n_splats, stats.n_new, stats.n_deleted, bits,
                              out_psnr, fit_psnr, time.perf_counter() - start, cut,
                              stats.bits_per_splat(),
                              fit_psnr - self.prev_psnr if coded.frame_type == "I" else None)
        return coded, report_, decoded

    def _plan_inter(self, warm: WarmStart) -> FramePlan:
        """The rate controller's plan; without a bit target, scaled by how much quality the previous
        splats lose on this frame (relative to the PSNR goal), so a still frame changes nothing."""
        assert self.reference is not None
        plan = self.rate.plan_inter(len(self.reference.q))
        if plan.bits is not None:
            return plan
        goal = (self.settings.target.psnr + self.psnr_margin if self.settings.target.psnr is not None
                else self.prev_psnr)
        need = max(0.0, min(2.0, (goal - warm.unshifted_psnr) / 3.0))
        if need < 0.02:
            return FramePlan(plan.count, 0, None, 0.0)
        return FramePlan(plan.count, int(round(plan.add * need)), None, min(1.0, plan.active * need * 2))

    def _is_scene_cut(self, image: torch.Tensor, warm_psnr: float) -> bool:
        """A new scene: the previous frame's splats explain this frame hardly better than a coarse
        picture of the frame itself (means of 40x40-pixel blocks) does. Motion, however fast, leaves
        the warm start far above that floor; a cut drops it to the floor. No pre-pass needed."""
        db = self.settings.scenecut_db
        return db > 0 and warm_psnr < coarse_psnr(image) + db

    # ------------------------------------------------------------------------------------------
    def _fit_to_psnr(self, image: torch.Tensor, target: float, seed: int) -> tuple[Splats, float]:
        """Fit at the splat count the PSNR target needs. Starts from the last I-frame's count (or a
        guess), steps along PSNR against log2(count) until the target is bracketed, then narrows the
        bracket by interpolation; at most PSNR_SEARCH_FITS fits. Keeps the smallest fit that
        reaches the target (else the best one)."""
        pixels = self.height * self.width
        count = self.psnr_count or max(MIN_SPLATS, pixels // 100)
        tried: dict[int, tuple[Splats, float]] = {}
        for _ in range(PSNR_SEARCH_FITS):
            splats, fit_psnr = self._fit(image, count, None, self.preset.intra, seed, None)
            tried[count] = (splats, fit_psnr)
            if abs(fit_psnr - target) <= PSNR_TOLERANCE_DB:
                break
            below = [(c, p) for c, (_, p) in tried.items() if p < target]
            above = [(c, p) for c, (_, p) in tried.items() if p >= target]
            if below and above:  # bracketed: interpolate in log2(count) between the closest pair
                (c0, p0), (c1, p1) = max(below), min(above)
                t = (target - p0) / max(p1 - p0, 1e-6)
                new = int(round(2.0 ** (math.log2(c0) + t * (math.log2(c1) - math.log2(c0)))))
                new = min(max(new, c0 + 1), c1 - 1)
            else:
                new = int(count * 2.0 ** ((target - fit_psnr) / DB_PER_DOUBLING))
            new = int(min(self.rate.max_splats, max(MIN_SPLATS, new)))
            if new in tried or new <= 0:
                break
            count = new
        good = [(c, s, p) for c, (s, p) in tried.items() if p >= target - PSNR_TOLERANCE_DB]
        count, splats, fit_psnr = (min(good, key=lambda t: t[0]) if good
                                   else max(((c, s, p) for c, (s, p) in tried.items()), key=lambda t: t[2]))
        self.psnr_count = count
        return splats, fit_psnr

    def _fit(self, image: torch.Tensor, count: int, init: Splats | None, config: FitConfig,
             seed: int, steps: QuantSteps | None) -> tuple[Splats, float]:
        """Fit `count` splats (from `init` when given); with `steps`, through the quantiser.
        Returns the splats and their PSNR in the fitting space."""
        transform: Callable[[Splats], Splats] | None = None
        if steps is not None:
            def transform(s: Splats) -> Splats:
                return fake_quantise(s, steps)
        splats, stats = fit_frame(image, count, init, config=config, seed=seed, progress=self.progress,
                                  channel_weights=CHANNEL_WEIGHTS, param_transform=transform)
        return splats, stats.psnr

    def _intra(self, index: int, image: torch.Tensor, plan: FramePlan
               ) -> tuple[CodedFrame, _Reference, float]:
        seed = self.settings.seed + index
        target_psnr = self.settings.target.psnr
        if target_psnr is not None:
            splats, fit_psnr = self._fit_to_psnr(image, target_psnr + self.psnr_margin, seed)
        else:
            splats, fit_psnr = self._fit(image, plan.count, None, self.preset.intra, seed, None)
        if plan.bits is not None:
            target = plan.bits - 8 * record_overhead()
            scale, unit_bits = search_step_scale(splats, target)
            first = self.bits_per_splat_unit is None
            self.bits_per_splat_unit = unit_bits / max(1, len(splats))
            if first and abs(math.log2(scale)) > 0.5:
                # The first guess of bits per splat was off: refit once at the count that the
                # default quantiser would give, so the operating point stays near step scale 1.
                count = int(max(MIN_SPLATS, min(self.rate.max_splats, target / self.bits_per_splat_unit)))
                splats, fit_psnr = self._fit(image, count, None, self.preset.intra, seed, None)
                scale, _ = search_step_scale(splats, target)
            self.steps = QuantSteps.default().scaled(scale)
        else:
            self.steps = QuantSteps.default()
        # Quantisation-aware fine-tune at the chosen steps, then code.
        splats, _ = self._fit(image, len(splats), splats, self.preset.fine_tune, seed, self.steps)
        if plan.bits is not None:  # the fine-tune moved things a little: land on the target again
            scale, _ = search_step_scale(splats, plan.bits - 8 * record_overhead(),
                                               around=self.steps)
            self.steps = self.steps.scaled(scale)
        q = quantise(splats, self.steps)
        coded = encode_intra_frame(q, self.steps)
        q = q.select(coded.order)
        return coded, _Reference(q, dequantise(q, self.steps, image.device)), fit_psnr

    def _inter(self, index: int, image: torch.Tensor, warm: WarmStart, plan: FramePlan
               ) -> tuple[CodedFrame, _Reference, float]:
        assert self.reference is not None
        prev = self.reference
        n_prev = len(prev.q)
        result = fit_inter(image, warm, self.steps, n_add=plan.add,
                           n_prune=max(0, n_prev + plan.add - plan.count), active_fraction=plan.active,
                           iterations=self.preset.inter_steps, channel_weights=CHANNEL_WEIGHTS,
                           seed=self.settings.seed + index)
        q = result.q
        coded = encode_inter_frame(q, prev.q, result.kept)
        if plan.bits is not None:
            coded, q = revert_to_budget(result, prev.q, coded, plan.bits - 8 * record_overhead())
        n_kept = len(result.kept)
        changed = _changed_rows(q, prev.q, result.kept)
        self.rate.learn_inter(8 * len(coded.payload), n_prev, len(q) - n_kept, changed)
        q = q.select(coded.order)
        decoded = dequantise(q, self.steps, image.device)
        fit_psnr = weighted_psnr(render_splats(decoded, self.height, self.width), image, CHANNEL_WEIGHTS)
        return coded, _Reference(q, decoded), fit_psnr


def coarse_psnr(image: torch.Tensor, block: int = 40) -> float:
    """PSNR (6:1:1) of the image against a picture of its own means over block x block pixels."""
    grid = (max(1, round(image.shape[1] / block)), max(1, round(image.shape[2] / block)))
    coarse = torch.nn.functional.adaptive_avg_pool2d(image[None], grid)
    up = torch.nn.functional.interpolate(coarse, size=image.shape[1:], mode="nearest")[0]
    return weighted_psnr(up, image, CHANNEL_WEIGHTS)


def _changed_rows(q: QuantisedSplats, prev: QuantisedSplats, kept: torch.Tensor) -> int:
    """How many survivors differ from their previous integers."""
    n = len(kept)
    if n == 0:
        return 0
    diff = ((q.means[:n] != prev.means[kept]).any(1) | (q.chol[:n] != prev.chol[kept]).any(1)
            | (q.colors[:n] != prev.colors[kept]).any(1))
    return int(diff.sum())


def file_header(info: VideoInfo, settings: EncoderSettings) -> FileHeader:
    """The .gsvc header an encode of `info` with `settings` writes (frame count patched on close)."""
    return FileHeader(
        width=info.width, height=info.height, fps_num=info.fps.numerator, fps_den=info.fps.denominator,
        colour_space="yuv", matrix=info.color_matrix if info.color_matrix in ("bt601", "bt709") else "bt709",
        colour_range="limited" if info.color_range == "tv" else "full",
        params={"encoder": ENCODER_NAME, "pix_fmt": info.pix_fmt, "preset": settings.preset,
                "gop": str(settings.gop), "target": settings.target.describe(),
                "scenecut_db": f"{settings.scenecut_db:g}",
                "channel_weights": ",".join(f"{w:g}" for w in CHANNEL_WEIGHTS)},
    )


def file_overhead(header: FileHeader, frame_count: int) -> int:
    """Bytes of a file's header, index and trailer: what --bpp must leave room for."""
    return len(header.to_bytes()) + index_and_trailer_size(frame_count)


def encode_frames(frames: Iterable[Frame], info: VideoInfo, settings: EncoderSettings, *, frame_count: int,
                  overhead_bytes: int, first_index: int = 0, progress: ProgressCallback | None = None
                  ) -> Iterator[tuple[int, CodedFrame, FrameReport, torch.Tensor]]:
    """Encode up to `frame_count` frames as one closed sequence that opens with an I-frame.

    Yields (index, coded frame, report, decoded YUV 4:4:4) per frame; index counts from
    `first_index`, which also seeds the fitter, so a chunk of a video codes exactly as it would
    wherever it runs. `overhead_bytes`: the file bytes outside frame records that this sequence's
    --bpp budget must pay for. Shared by `encode_video` and chunked encoding (gsvc_cli.chunked).
    """
    encoder = Encoder(info, settings, frame_count, overhead_bytes, progress)
    for k, frame in enumerate(frames):
        if k >= frame_count:
            break
        coded, rep, decoded = encoder.encode(first_index + k, frame)
        yield first_index + k, coded, rep, decoded


def encode_video(frames: Iterable[Frame], info: VideoInfo, output: Path, settings: EncoderSettings, *,
                 frame_count: int, overwrite: bool = False, progress: ProgressCallback | None = None,
                 on_frame: Callable[[int, torch.Tensor], None] | None = None) -> EncodeSummary:
    """Encode `frame_count` frames into `output` (atomically: nothing appears unless all succeed).

    on_frame(index, yuv444 [3,H,W] in [0,1]) receives the encoder's own reconstruction of each frame,
    which the decoder reproduces exactly.
    """
    start = time.perf_counter()
    header = file_header(info, settings)
    overhead = file_overhead(header, frame_count)
    reports: list[FrameReport] = []
    total_bits = 8 * overhead
    with GsvcWriter(output, header, overwrite=overwrite) as writer:
        for index, coded, rep, decoded in encode_frames(frames, info, settings, frame_count=frame_count,
                                                        overhead_bytes=overhead, progress=progress):
            writer.write_frame(coded.frame_type, rep.n_splats, coded.payload)
            reports.append(rep)
            total_bits += rep.bits
            if on_frame is not None:
                on_frame(index, decoded)
            report(progress, "encode", index + 1, frame_count, type=rep.frame_type, psnr=rep.psnr,
                   splats=rep.n_splats, bpp=total_bits / (info.width * info.height * (index + 1)))
        if not reports:
            raise InputError(f"{info.path}: no frames to encode")
    return EncodeSummary(Path(output), info.width, info.height, reports, Path(output).stat().st_size,
                         time.perf_counter() - start)

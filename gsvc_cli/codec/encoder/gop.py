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
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from gsvc_cli.atomic import check_output_path
from gsvc_cli.codec.bitstream.container import FileHeader, GsvcWriter, index_and_trailer_size, record_overhead
from gsvc_cli.codec.bitstream.entropy import ModelChoices
from gsvc_cli.codec.bitstream.frame_coding import (
    CodedFrame,
    CodingMemory,
    encode_inter_frame,
    encode_intra_frame,
    encode_picture_frame,
)
from gsvc_cli.codec.bitstream.motion_vectors import FLAG_CONTEXTS, MotionVectors, moving_cells
from gsvc_cli.codec.bitstream.quantise import QuantisedSplats, QuantSteps, dequantise, fake_quantise, quantise
from gsvc_cli.codec.encoder.densify import colour_gradient, removal_cost
from gsvc_cli.codec.encoder.fitting import coarse_fit, fit_frame
from gsvc_cli.codec.encoder.inter_fit import InterResult, WarmStart, fit_inter, warm_start
from gsvc_cli.codec.encoder.loss import loss_weights, weighted_psnr
from gsvc_cli.codec.encoder.motion import SEARCH_PIXELS, block_motion
from gsvc_cli.codec.encoder.picture_motion import (
    FAR_SCALE,
    VectorCosts,
    coarse_field,
    luma_share,
    picture_motion,
    quarter_refine,
    refine_field,
)
from gsvc_cli.codec.encoder.presets import CUT_MARGIN_DB, FitConfig, get_preset
from gsvc_cli.codec.encoder.rate_control import (
    BPP_SEARCH_PASSES,
    BPP_STEER_PASSES,
    BPP_TOLERANCE,
    DB_PER_RATE_DOUBLING,
    MIN_SPLATS,
    FramePlan,
    QualitySteer,
    RateController,
    RateTarget,
    first_quality,
    next_quality,
    next_scale,
    rate_slope,
    revert_rows,
    revert_to_budget,
    search_step_scale,
)
from gsvc_cli.codec.encoder.rd import (
    RDTuning,
    change_bits,
    intra_base_steps,
    lagrangian,
    replacement_cost,
    residual_products,
    weighted_sse,
)
from gsvc_cli.codec.moved_picture import move_picture
from gsvc_cli.codec.splats import Splats, render_splats
from gsvc_cli.errors import InputError, UsageError
from gsvc_cli.metrics.psnr import frame_psnr
from gsvc_cli.progress import ProgressCallback, report
from gsvc_cli.render import render
from gsvc_cli.video import Frame, VideoInfo

CHANNEL_WEIGHTS = (6.0, 1.0, 1.0)
_PictureChoice = tuple[CodedFrame, torch.Tensor, float]
"""An M-frame as _picture_rd weighs it: (coded, its picture, J)."""
_ResidualSet = tuple[float, QuantisedSplats, QuantSteps, Splats]
"""An M-frame's residual splats as _with_residual tried them: (J, integers and decoded splats in
coding order, steps)."""
_IntraState = tuple[QuantSteps, float, int | None, tuple[float, float]]
"""What an I-fit changes (Encoder._intra_state): steps, step scale, splat count, (SSE, bits)."""
_ResidualTrial = Callable[[QuantisedSplats, QuantSteps], tuple[_PictureChoice, float, Splats]]
"""Prices residual splats in an M-frame: (the choice, J at the choosing lambda, decoded splats)."""
RESIDUAL_STEP_SCALES = (1.0, 2.0, 4.0)
"""Quantiser step scales (times the I-frame's) an M-frame's residual splats are tried at."""
RESIDUAL_MAX_STEPS = 200
"""Most fitting steps for an M-frame's residual splats (a few hundred splats settle early)."""
RESIDUAL_PRUNE_RATIO = 0.8
"""Each count an M-frame's residual set is pruned to is at most this share of the one before."""
ENCODER_NAME = "gsvc-encoder 1"
PSNR_MARGIN_DB = 0.3  # starting allowance for quantisation and chroma subsampling (--psnr)
PSNR_TOLERANCE_DB = 0.25
PSNR_SEARCH_FITS = 6
DB_PER_DOUBLING = 2.5  # typical PSNR gain per doubling of the splat count (measured on Kodak/CIF)
# Constant-quality (lambda) mode, see rd.py.
COUNT_EXPONENT = DB_PER_DOUBLING / (10 * math.log10(2))  # D ~ N^-beta for N splats
STEP_SCALE_GRID = tuple(2.0 ** (k / 2) for k in range(-3, 4))  # around the last I-frame's scale
PIXELS_PER_SPLAT_GUESS = 50  # first I-frame's count before the RD count model takes over
COUNT_BAND = 0.35  # octaves: an I-frame count model answer this close to the fitted count needs no refit
COARSE_SSE_PER_BIT = 0.78
"""The first guess of a whole fit's weighted SSE per bit over its coarse stage's at the same count
(RDTuning.coarse_count_probe); later I-frames use what the last one measured. Frame 0 of street
1080p, cockatoo and flower 720p at Q 27-36 gave 0.42-0.96 (geometric mean 0.78, BENCHMARKS.md)."""
INTRA_TRIAL_BOUND = 0.65  # a full I-fit's J over a RDTuning.intra_trial_steps fit's: 0.74-0.87 measured
P_SSE_RATIO_FLOOR = 0.05  # no P-fit has removed more than 95% of its warm start's error (cut check)


@dataclass(frozen=True)
class EncoderSettings:
    """How to encode. gop: longest GOP in frames (1 = all intra). scenecut_db: a P-frame whose warm
    start is less than this many dB (YUV 6:1:1) better than a coarse 40x40-pixel-block picture of the frame
    becomes an I-frame (a scene cut); 0 disables scene-cut detection (the moved-picture test of
    the quality modes too). intra_splats: the I-frames'
    splat count instead of the count model's (a one-frame --bpp search's rate knob: there the count
    model leaves the count unchanged over a stretch of qualities, and with it the rate)."""

    target: RateTarget
    preset: str = "medium"
    gop: int = 60
    scenecut_db: float = 2.0
    seed: int = 0
    tuning: RDTuning = RDTuning()
    intra_splats: int | None = None  # constant quality: every I-frame fits exactly this many splats

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
    quality: float | None = None  # the constant-quality value of the file (None: another target)
    passes: int = 1  # whole encodes it took (a --bpp search takes several)

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

    def __init__(self, info: VideoInfo, settings: EncoderSettings, frames: int | None,
                 overhead_bytes: int, progress: ProgressCallback | None = None) -> None:
        self.info = info
        self.settings = settings
        self.progress = progress  # receives the fitter's "fit" events (steps within a frame)
        self.height, self.width = info.height, info.width
        self.large = info.height * info.width > SEARCH_PIXELS  # searched downscaled; a P-fit costs seconds
        preset = get_preset(settings.preset)
        tuning = settings.tuning
        chroma_matched = info.width * info.height < tuning.chroma_match_below_pixels
        self.chroma_match_steps = tuning.chroma_match_steps if chroma_matched else 0
        intra = replace(preset.intra, coarse_steps=tuning.coarse_steps, fine_steps=tuning.fine_steps)
        # Residual splats of M-frames: short fits at the preset's own learning rates.
        self.residual_densities = tuning.picture_residual
        self.extra_densities = tuning.picture_residual_extra  # tried only near an I-frame
        self.residual_config = replace(intra, max_steps=min(intra.max_steps, RESIDUAL_MAX_STEPS))
        if info.width * info.height >= preset.residual_max_pixels:
            self.residual_densities = tuning.large_picture_residual
            self.extra_densities = tuning.large_residual_extra
            residual_steps = max(1, min(intra.max_steps, tuning.large_residual_steps))
            self.residual_config = replace(intra, max_steps=residual_steps,
                                           final_refit_iters=tuning.large_residual_refit,
                                           coarse_steps=tuning.large_residual_coarse,
                                           fine_steps=tuning.large_residual_fine,
                                           refit_iters=tuning.large_residual_inner_refit,
                                           coarse_factor=tuning.large_residual_coarse_factor,
                                           fine_factor=tuning.large_residual_fine_factor)
        if info.width * info.height < preset.intra.coarse_min_pixels:  # fitted at full size only
            lr = tuning.intra_lr_scale
            steps = max(1, round(preset.small_intra_steps * tuning.intra_steps_scale))
            intra = replace(intra, max_steps=steps,
                            lr_means=intra.lr_means * lr, lr_chol=intra.lr_chol * lr,
                            lr_colors=intra.lr_colors * lr, anneal_steps=int(tuning.intra_anneal_steps))
        self.preset = replace(preset, intra=intra)
        self.rate = RateController(settings.target, info.width, info.height, frames, settings.gop,
                                   overhead_bytes,
                                   entry_bytes=index_and_trailer_size(1) - index_and_trailer_size(0))
        self.steps = QuantSteps.default()
        self.reference: _Reference | None = None
        self.prev_psnr = 0.0
        self.gop_length = 0
        self.psnr_margin = PSNR_MARGIN_DB
        self.psnr_count: int | None = None  # --psnr: the last I-frame's splat count
        self.bits_per_splat_unit: float | None = None  # I-frame bits/splat at step scale 1
        # Constant-quality mode: one lambda, and what the coded frames taught about costs.
        self.lam = lagrangian(settings.target.quality) if settings.target.quality is not None else None
        self.weights = loss_weights(CHANNEL_WEIGHTS, "cpu")
        self.intra_count: int | None = None
        self.intra_scale = 1.0
        self.intra_cost = (0.0, 0.0)  # (weighted SSE, bits) of the last I-frame
        self.last_fit_j = 0.0  # J of the last real I-fit, coded or a lost trial (_intra_may_win)
        self.coarse_sse_per_bit = COARSE_SSE_PER_BIT  # a whole fit's SSE/bit over its coarse stage's
        self.p_sse_ratio = 0.1  # a P-fit's SSE over its warm start's, learned (optimistic start)
        self.p_bits = 0.0  # bits of a recent P-frame, learned
        self.active_fraction = 0.3
        self.add_count: int | None = None
        self.prev_luma: torch.Tensor | None = None  # the last source frame's luma (motion search)
        self.p_losses = 0  # P attempts in a row, each from a fresh I-frame, that lost clearly
        self.p_skips_left = 0  # frames still to code as I without trying P
        self.picture: torch.Tensor | None = None  # the last decoded picture (what an M-frame moves)
        self.p_over_m: float | None = None  # J of the last P-fit over its M-frame's
        self.p_fits_skipped = 0  # P-fits skipped in a row for M-frames (RDTuning.m_skip_ratio)
        self.p_skip_run = settings.tuning.m_skip_frames  # how many to skip after a P-fit lost so
        self.p_far_losses = 0  # P-fits in a row that lost so (RDTuning.m_skip_backoff)
        self.splat_frame_index: int | None = None  # the last I- or P-frame (M-frames come after it)
        self.field_zero_share = 0.5  # zero residuals in the last M-frame's field (the flag's price)
        self.flag_bucket_share: tuple[float, ...] = ()  # the same per flag_contexts bucket, of the
        # last field coded after one of its grid (VectorCosts.prices; () before the first)
        self.coding_memory: CodingMemory | None = None  # what the next M-frame's payload may repeat
        self.searched_field: MotionVectors | None = None  # the field of this frame's M-frame candidate
        self.cells_won: set[int] = set()  # block sizes whose field won since the last search of all
        self.full_cell_search: int | None = None  # the frame of the last search of all block sizes
        self.moved_margin_db = math.inf  # that field's moved picture over coarse_psnr (dB)
        self.gop_cost = (0.0, 0)  # (sum of J, frames) since the last I-frame, that I-frame included
        self.above_mean = 0  # inter frames in a row whose J exceeded the GOP's mean J (refresh_run)

    def set_quality(self, quality: float) -> None:
        """Move lambda for the frames that follow (a steered --bpp pass); constant-quality only."""
        assert self.lam is not None
        self.lam = lagrangian(quality)

    # ------------------------------------------------------------------------------------------
    def encode(self, index: int, frame: Frame, frame_type: str | None = None
               ) -> tuple[CodedFrame, FrameReport, torch.Tensor]:
        """Code one frame; returns the payload, its report and the decoded YUV 4:4:4 image.
        frame_type "I", "P" or "M" overrides the choice between them (a steered --bpp pass keeps its
        reference pass's pattern, so that its rate moves with lambda alone); a P- or M-frame is still
        an I-frame when nothing can be predicted (the first frame, a full GOP)."""
        start = time.perf_counter()
        image = frame.to_yuv444_float(match_steps=self.chroma_match_steps)
        cut = False
        coded = None
        predictable = self.reference is not None and self.gop_length < self.settings.gop
        moved = (self._picture_rd(index, image)
                 if predictable and self.lam is not None and frame_type in (None, "M")
                 and self.settings.tuning.picture_frames else None)
        if moved is not None and frame_type == "M":
            return self._picture_frame(index, frame, image, moved[0], moved[1], start)
        hard_cut = moved is not None and frame_type is None and self._moved_picture_is_cut()
        if predictable and (frame_type == "I" or hard_cut):
            cut = True
        elif predictable and frame_type is None and self.p_skips_left > 0:
            self.p_skips_left -= 1
            cut = True  # recent P-fits from fresh I-frames all lost clearly: no P attempt here
        elif predictable and moved is not None and frame_type is None and self._p_fit_pointless():
            pass  # the last P-fit lost to its M-frame by far: M or I without a P attempt here
        elif predictable:
            from_source = self.lam is not None and self.settings.tuning.motion_from_source
            warm = warm_start(image, self.reference.q, self.steps, CHANNEL_WEIGHTS,
                              local_motion=self.lam is not None and self.settings.tuning.local_motion,
                              min_gain_db=self.settings.tuning.motion_gain_db,
                              lam=self.lam if self.settings.tuning.motion_by_cost else None,
                              motion_reference=self.prev_luma if from_source else None,
                              smoothing=self.settings.tuning.motion_smoothing)
            if not self.settings.tuning.motion_field:
                warm.vectors = None  # ablation: moved centres coded as differences, as before 3.0
            by_cost = self.lam is not None and self.settings.tuning.cost_ip
            if frame_type is None:
                cut = self._intra_is_cheaper(warm) if by_cost else self._is_scene_cut(image, warm.psnr)
            if not cut and self.lam is not None:
                coded, result, fit_psnr, p_cost = self._inter_rd(index, image, warm)
                self.p_over_m = p_cost / max(moved[2], 1e-12) if moved is not None else None
                self._note_p_over_m()
                if moved is not None and self._m_beats_p(index, moved[0], moved[2], coded, p_cost):
                    looks_cut = (by_cost and frame_type is None and moved[0].stats.n_splats > 0
                                 and p_cost > self.settings.tuning.p_preference * self._intra_cost_estimate())
                    intra = self._real_intra_over_m(index, image, moved) if looks_cut else None
                    if intra is None and not self._refresh_due(moved[2], frame_type):
                        return self._picture_frame(index, frame, image, moved[0], moved[1], start, moved[2])
                    if intra is not None:
                        coded, result, fit_psnr = intra
                        cut = True
                        self.gop_length = 0
                    else:
                        coded = None  # an I-frame refreshes the GOP (_refresh_due)
                elif by_cost:
                    i_cost = self._intra_cost_estimate()
                    if frame_type is None and p_cost > self.settings.tuning.p_preference * i_cost:
                        coded, cut = None, True  # the fitted P-frame costs more than an I-frame would
                    elif frame_type is None and p_cost > i_cost and self._reference_is_stale(index):
                        intra = self._real_intra_if_cheaper(index, image, p_cost)
                        if intra is not None:  # the estimate was stale: a cut after M-frames
                            coded, result, fit_psnr = intra
                            cut = True
                            self.gop_length = 0
                    self._note_p_attempt(p_cost / max(i_cost, 1e-12))
                if coded is not None and coded.frame_type == "P":
                    if self._refresh_due(p_cost, frame_type):
                        coded = None  # an I-frame refreshes the GOP
                    else:
                        self._count_cost(p_cost)
            elif not cut:
                coded, result, fit_psnr = self._inter(index, image, warm, self._plan_inter(warm))
        if (coded is None and moved is not None and not hard_cut
                and moved[2] * self.settings.tuning.m_preference < self._intra_cost_estimate()):
            # At a frame the cost test called a cut, the estimate (the GOP's first I-frame's J)
            # says little: an M-frame with residual splats beat it at a real cut. A real I-fit
            # decides there (its J against the M-frame's).
            intra = self._real_intra_over_m(index, image, moved) if cut and moved[0].stats.n_splats else None
            if intra is None and not (not cut and self._refresh_due(moved[2], frame_type)):
                return self._picture_frame(index, frame, image, moved[0], moved[1], start, moved[2])
            if intra is not None:
                coded, result, fit_psnr = intra
                self.gop_length = 0
        if coded is None:
            saved = self._intra_state()
            coded, result, fit_psnr = (self._intra_rd(index, image) if self.lam is not None
                                       else self._intra(index, image, self.rate.plan_intra()))
            if moved is not None and not hard_cut and frame_type is None and self._moved_beats_intra(moved):
                self._restore_intra_state(saved)
                return self._picture_frame(index, frame, image, moved[0], moved[1], start, moved[2])
            self.gop_length = 0
            self._p_fits_after_intra()
        if coded.frame_type == "I" and self.lam is not None:
            self.gop_cost, self.above_mean = (0.0, 0), 0
            self._count_cost(self._intra_cost_estimate())
        self.reference = result
        self.prev_luma = image[0]
        self.splat_frame_index = index
        decoded = render_splats(result.splats, self.height, self.width)
        return self._finish(index, frame, image, coded, decoded, fit_psnr, start, cut)

    def _finish(self, index: int, frame: Frame, image: torch.Tensor, coded: CodedFrame, decoded: torch.Tensor,
                fit_psnr: float, start: float, cut: bool = False
                ) -> tuple[CodedFrame, FrameReport, torch.Tensor]:
        """What every coded frame updates (the picture, the GOP length, rate figures) and its report."""
        self.picture = decoded
        if coded.frame_type == "I":
            self.coding_memory = None
        elif coded.frame_type == "M" and self.settings.tuning.model_memory:
            self.coding_memory = coded.memory
        self.gop_length += 1
        self.prev_psnr = weighted_psnr(decoded, image, CHANNEL_WEIGHTS)
        output = Frame.from_yuv444_float(decoded, self.info, index)
        quality = frame_psnr(frame, output, with_rgb=False)
        out_psnr = quality.get("psnr_yuv", quality.get("psnr_y", 0.0))
        if self.settings.target.psnr is not None:  # learn what quantisation and 4:2:0 cost
            self.psnr_margin = min(3.0, max(0.0, self.psnr_margin + self.settings.target.psnr - out_psnr))
        stats = coded.stats
        bits = 8 * (len(coded.payload) + record_overhead(stats.n_splats, len(coded.payload)))
        self.rate.record(coded.frame_type, bits, stats.n_splats,
                         self.bits_per_splat_unit if coded.frame_type == "I" else None)
        report_ = FrameReport(index, coded.frame_type, stats.n_splats, stats.n_new, stats.n_deleted, bits,
                              out_psnr, fit_psnr, time.perf_counter() - start, cut,
                              stats.bits_per_splat(),
                              fit_psnr - self.prev_psnr if coded.frame_type == "I" else None)
        return coded, report_, decoded

    def _picture_rd(self, index: int, image: torch.Tensor) -> tuple[CodedFrame, torch.Tensor, float]:
        """The M-frame of least J over the block sizes tried: (coded, moved picture, J). Its field
        is searched between the previous decoded picture and this frame (luma), each vector by its
        own J (picture_motion) unless tuning.picture_rd_search is off; with tuning.picture_quarter,
        each block size's field is also refined to quarter pixels and kept where J says so."""
        assert self.lam is not None and self.picture is not None
        reference = self.picture.numpy()
        best: tuple[CodedFrame, torch.Tensor, float] | None = None
        best_motion: MotionVectors | None = None
        luma = luma_share(CHANNEL_WEIGHTS)
        by_rd = self.settings.tuning.picture_rd_search
        tuning = self.settings.tuning
        far = tuning.far_motion
        coarse = (coarse_field(self.picture[0], image[0], FAR_SCALE if far and not self.large else None)
                  if by_rd and (self.large or far) else None)
        memory = self.coding_memory if tuning.flag_bucket_costs else None
        costs = (VectorCosts.flagged(self.field_zero_share, tuning.median_search,
                                     memory.moving if memory is not None else None, self.flag_bucket_share)
                 if tuning.field_flag_costs and tuning.field_coding != "neighbour" else VectorCosts())
        target, weights = image.numpy(), self.weights.numpy()
        # kinds 2-4 (the "neighbour" coding) carry neither the overlap nor the 8-tap filter
        sharp_fields = (tuning.sharp_filter and tuning.field_coding != "neighbour"
                        and self.height * self.width <= tuning.sharp_max_pixels)

        def choice(motion: MotionVectors) -> _PictureChoice | None:
            """The field's M-frame, None when its distortion alone is no better than the best J so
            far (it cannot win: its bits only add), which spares coding the losers' fields."""
            moved = torch.from_numpy(move_picture(reference, motion))
            sse = weighted_sse(moved, image, self.weights)
            if best is not None and sse >= best[2]:
                return None
            coded = encode_picture_frame(motion, field_coding=tuning.field_coding, memory=self.coding_memory)
            return coded, moved, sse + self.lam * 8.0 * len(coded.payload)

        for cell in self._cells_to_try(index):
            if by_rd:
                vectors = picture_motion(self.picture[0], image[0], cell, self.lam, luma, coarse, costs, far)
                fields = [MotionVectors(vectors.numpy(), cell)]
                if tuning.picture_quarter:
                    for sharp in (False, True) if sharp_fields else (False,):
                        quarter = quarter_refine(reference[:1], image[0], cell, vectors, self.lam, luma,
                                                 tuning.quarter_neighbours, costs, sharp)
                        if (quarter % 4).any():
                            fields.append(MotionVectors(quarter.numpy(), cell, 4, sharp=sharp))
            else:
                field = block_motion(self.picture[0], image[0], cell)
                fields = [MotionVectors(torch.round(field.vectors).to(torch.int64).numpy(), field.spacing)]
            if tuning.overlapped_cells and tuning.field_coding != "neighbour":
                fields += [replace(motion, overlapped=True) for motion in fields]
            if by_rd and tuning.field_refine_all and tuning.field_refine_passes:
                fields += [refine_field(reference, target, motion, self.lam, weights, costs,
                                        tuning.field_refine_passes) for motion in fields]
            for motion in fields:
                candidate = choice(motion)
                if candidate is not None and (best is None or candidate[2] < best[2]):
                    best, best_motion = candidate, motion
        assert best is not None and best_motion is not None
        if by_rd and tuning.field_refine_passes:
            # with refine_luma_only, the polish weighs luma alone (a third of the moves' work);
            # the refined field is still kept only where the whole J is lower
            planes = 1 if tuning.refine_luma_only else len(weights)
            refined = refine_field(reference[:planes], target[:planes], best_motion, self.lam,
                                   weights[:planes], costs, tuning.field_refine_passes)
            if (refined.vectors != best_motion.vectors).any():
                candidate = choice(refined)
                if candidate is not None and candidate[2] < best[2]:
                    best, best_motion = candidate, refined
        self.searched_field = best_motion
        self.cells_won.add(best_motion.cell)
        self.moved_margin_db = weighted_psnr(best[1], image, CHANNEL_WEIGHTS) - coarse_psnr(image)
        if self.residual_densities and not self._moved_picture_is_cut():
            best = self._with_residual(image, best_motion, best)
        return best

    def _cells_to_try(self, index: int) -> list[int]:
        """The block sizes this frame's M-frame field is searched at (tuning.cell_memory, on frames
        of more than SEARCH_PIXELS): all of picture_cells every cell_memory frames, else those that
        won since the last such frame.
        Each size's search, refinements and candidates cost alike, and at a given frame size one
        size wins run after run, so the others are looked at again only now and then."""
        cells = [int(c) for c in self.settings.tuning.picture_cells.split(",")]
        memory = self.settings.tuning.cell_memory if self.large else 0
        last = self.full_cell_search
        if memory <= 0 or last is None or index - last >= memory or index < last or not self.cells_won:
            self.full_cell_search, self.cells_won = index, set()
            return cells
        return [c for c in cells if c in self.cells_won]

    def _with_residual(self, image: torch.Tensor, motion: MotionVectors,
                       plain: _PictureChoice) -> _PictureChoice:
        """The M-frame plus residual splats (format kind 4) when that lowers J: splats fitted to
        what the moved picture misses, at each count of self.residual_densities (pixels per
        splat) and each step scale of RESIDUAL_STEP_SCALES times the I-frame's; else `plain`.
        With tuning.residual_prune, the set with the lowest J is also tried without its least
        useful splats (RESIDUAL_PRUNE_RATIO fewer each time), so the count can settle anywhere
        below the fitted one rather than jump between a few counts as lambda moves.
        The "new splats where the error is" of the method, added to the picture instead of to
        the splat state (which the next P-frame still predicts from)."""
        assert self.lam is not None
        _, moved, plain_cost = plain
        best = plain
        # Choose by lambda x residual_lambda_ratio (residual splats stay in the pictures of the
        # M-frames after this one); return J at lambda, which the frame-type choice compares.
        lam_choice = self.lam * self.settings.tuning.residual_lambda_ratio
        plain_bits = 8.0 * len(plain[0].payload)
        best_choice = plain_cost - (self.lam - lam_choice) * plain_bits
        target = image - moved
        config = self.residual_config
        pixels = self.height * self.width
        field_coding = self.settings.tuning.field_coding

        choices: ModelChoices = {}  # every candidate codes the same field

        def candidate(q: QuantisedSplats, steps: QuantSteps) -> tuple[_PictureChoice, float, Splats]:
            """(the choice, J at lam_choice, its splats as decoded, in coding order)."""
            coded = encode_picture_frame(motion, (q, steps), field_coding, self.coding_memory, choices)
            decoded = dequantise(q.select(coded.order), steps)
            # unclamped: weighted_sse clamps as it sums; only the chosen picture is clamped (below)
            picture = render(decoded.means, decoded.chol, decoded.colors, self.height, self.width).add_(moved)
            sse, bits = weighted_sse(picture, image, self.weights), 8.0 * len(coded.payload)
            return (coded, picture, sse + self.lam * bits), sse + lam_choice * bits, decoded

        fitted: _ResidualSet | None = None  # the least J with splats
        tuning = self.settings.tuning

        def densities(spec: str) -> None:
            nonlocal fitted, best, best_choice
            for per_splat in (float(c) for c in spec.split(",")):
                count = max(1, int(pixels // per_splat))
                splats, _ = self._fit(target, count, None, config, self.settings.seed, None)
                for scale in RESIDUAL_STEP_SCALES:
                    steps = QuantSteps.default().scaled(self.intra_scale * scale)
                    q = quantise(splats, steps)
                    choice, j, decoded = candidate(q, steps)
                    if fitted is None or j < fitted[0]:
                        fitted = (j, q.select(choice[0].order), steps, decoded)
                    if j < best_choice:
                        best, best_choice = choice, j

        def pruned() -> None:
            nonlocal best, best_choice
            if fitted is not None and tuning.residual_prune:
                best, best_choice = self._pruned_residual(target, fitted, candidate, best, best_choice)

        densities(self.residual_densities)
        pruned_set = None
        if tuning.residual_extra_after_prune:
            pruned()  # the extra densities only where even the pruned set leaves J above the gate
            pruned_set = fitted
        if self.extra_densities and best[2] > tuning.residual_extra_gate * self._intra_cost_estimate():
            densities(self.extra_densities)  # near an I-frame: denser splats may keep the M-frame
        if fitted is not pruned_set:
            pruned()  # the set of least J as fitted, unless it is the one pruned already
        return best if best is plain else (best[0], best[1].clamp_(0, 1), best[2])

    def _pruned_residual(self, target: torch.Tensor, fitted: _ResidualSet, candidate: _ResidualTrial,
                         best: _PictureChoice, best_choice: float) -> tuple[_PictureChoice, float]:
        """The residual set `fitted` without its splats of least removal cost (densify.removal_cost
        against the residual `target`), at counts falling by RESIDUAL_PRUNE_RATIO, while J falls
        (two rises in a row end it)."""
        _, q, steps, decoded = fitted
        _, wt_residual = colour_gradient(decoded, target)
        gain = removal_cost(decoded.colors, decoded.chol, wt_residual, self.weights)
        ranked = torch.argsort(gain, descending=True, stable=True)
        count, rises, last = len(q), 0, fitted[0]
        while rises < 2:
            count = min(count - 1, int(count * RESIDUAL_PRUNE_RATIO))
            if count < 1:
                break
            keep = torch.sort(ranked[:count]).values
            choice, j, _ = candidate(q.select(keep), steps)
            if j < best_choice:
                best, best_choice = choice, j
            rises = rises + 1 if j >= last else 0
            last = j
        return best, best_choice

    def _moved_picture_is_cut(self) -> bool:
        """A cut by the picture (tuning.cut_by_picture): this frame's best moved picture, before
        residual splats, is less than CUT_MARGIN_DB better than a picture of the frame's own 40x40
        block means (coarse_psnr). Whatever moves, the previous picture explains the next one far
        better than that; after a cut it cannot. J alone coded some cuts as M-frames with residual
        splats or as P-frames, whose splat state then still held the old scene. `--scenecut 0`
        turns it off, as it turns off the warm-start test of the fixed-count modes."""
        return (self.settings.tuning.cut_by_picture and self.settings.scenecut_db > 0
                and self.moved_margin_db < CUT_MARGIN_DB)

    def _m_beats_p(self, index: int, m_coded: CodedFrame, m_cost: float, p_coded: CodedFrame,
                   p_cost: float) -> bool:
        """M rather than the fitted P-frame (J x tuning.m_preference below P's J). With
        tuning.m_copy_weight w, both distortions count 1 + w x n times, n the M-frames since the
        last splat frame (up to 8): the later M-frames copy this picture, so its distortion lasts
        (an mbtree-like weight; the rates count once)."""
        tuning = self.settings.tuning
        if tuning.m_copy_weight > 0:
            assert self.lam is not None and self.splat_frame_index is not None
            weight = 1.0 + tuning.m_copy_weight * min(8, index - self.splat_frame_index - 1)
            m_rate = self.lam * 8.0 * len(m_coded.payload)
            p_rate = self.lam * 8.0 * len(p_coded.payload)
            m_cost = weight * (m_cost - m_rate) + m_rate
            p_cost = weight * (p_cost - p_rate) + p_rate
        return m_cost * tuning.m_preference < p_cost

    def _picture_frame(self, index: int, frame: Frame, image: torch.Tensor, coded: CodedFrame,
                       moved: torch.Tensor, start: float, cost: float | None = None
                       ) -> tuple[CodedFrame, FrameReport, torch.Tensor]:
        """Code an M-frame: the splat state (and the luma the next P-frame's motion starts from)
        stays the last splat frame's. cost: its J (constant quality), counted in the GOP's. The
        zero flag's price follows coded M-frames only, so that a steered pass, which searches M-frames
        only where its reference pass coded them, prices them alike."""
        if cost is not None:
            self._count_cost(cost)
        if self.searched_field is not None:
            zero = ~moving_cells(self.searched_field.vectors)
            self.field_zero_share = float(zero.mean())
            contexts = self.coding_memory.flag_contexts(self.searched_field) if self.coding_memory else None
            if contexts is not None:  # what each bucket's flags were, as this field's coding split them
                prior = 2.0  # cells' worth of the whole field's share in each bucket's estimate
                cells = np.bincount(contexts, minlength=FLAG_CONTEXTS)
                zeros = np.bincount(contexts, weights=zero.reshape(-1), minlength=FLAG_CONTEXTS)
                shares = (zeros + prior * self.field_zero_share) / (cells + prior)
                self.flag_bucket_share = tuple(shares.tolist())
        return self._finish(index, frame, image, coded, moved, weighted_psnr(moved, image, CHANNEL_WEIGHTS),
                            start)

    def _count_cost(self, cost: float) -> None:
        """Add a coded frame's J to the GOP's (an inter frame's after _refresh_due saw it)."""
        total, frames = self.gop_cost
        self.gop_cost = (total + cost, frames + 1)

    def _refresh_due(self, inter_cost: float, frame_type: str | None) -> bool:
        """An I-frame instead of the best inter frame (J `inter_cost`) when that J and the J of the
        tuning.refresh_run - 1 inter frames before it exceed the mean J per frame since the last
        I-frame, that I-frame included. P- and M-frames drift from their source as a GOP goes on,
        so their J grows; if the next GOP costs what this one did, the mean J per frame over a GOP
        is least when the GOP ends where a frame's J passes that mean (renewal: the marginal cost
        meets the average). A run of frames, not one, so that one hard frame in a GOP whose J has
        levelled off does not end it. Not in a steered pass, whose pattern is given."""
        total, frames = self.gop_cost
        run = self.settings.tuning.refresh_run
        if run <= 0 or frame_type is not None or self.lam is None or frames < 2:
            return False
        self.above_mean = self.above_mean + 1 if inter_cost > total / frames else 0
        return self.above_mean >= run

    def _reference_is_stale(self, index: int) -> bool:
        """M-frames came between the splat reference and frame `index` (tuning.real_intra_after_m)."""
        return (self.settings.tuning.real_intra_after_m and self.splat_frame_index is not None
                and index - self.splat_frame_index > 1)

    def _real_intra_if_cheaper(self, index: int, image: torch.Tensor, p_cost: float
                               ) -> tuple[CodedFrame, _Reference, float] | None:
        """Fit the I-frame for real and return it when the P-frame's J exceeds p_preference times
        its J; else None, with the encoder's I-frame state (steps, count, costs) as it was. The
        estimate is the GOP's first I-frame's J, which says little about a cut after a run of
        M-frames (the scene-cut clip's cut became a P-frame of 76 kbit at 26.0 dB where an I-frame
        took 56 kbit at 28.6 dB)."""
        if not self._intra_may_win(index, image, p_cost):
            return None
        saved = self._intra_state()
        coded, result, fit_psnr = self._intra_rd(index, image)
        assert self.lam is not None
        i_sse, i_bits = self.intra_cost
        if p_cost > self.settings.tuning.p_preference * (i_sse + self.lam * i_bits):
            return coded, result, fit_psnr
        self._restore_intra_state(saved)
        return None

    def _intra_state(self) -> _IntraState:
        """What an I-fit changes (steps, step scale, splat count, costs): kept before a trial fit
        and put back when the trial loses."""
        return self.steps, self.intra_scale, self.intra_count, self.intra_cost

    def _restore_intra_state(self, state: _IntraState) -> None:
        self.steps, self.intra_scale, self.intra_count, self.intra_cost = state

    def _intra_may_win(self, index: int, image: torch.Tensor, p_cost: float) -> bool:
        """Whether a full I-fit might beat `p_cost`, judged by a short fit (tuning.intra_trial_steps)
        at the last I-frame's count and step scale: a full fit has reached INTRA_TRIAL_BOUND of the
        short fit's J or more, so below that the full fit (ten seconds at CIF) need not run. The
        trials after M-frames mostly lose by far (BENCHMARKS.md "A short fit before each real
        I-fit trial"). Frames fitted coarse to fine, where a short fit is no cheap guide, are judged
        by the J of the last real I-fit (coded, or a trial that lost: fresher than the estimate)
        times tuning.large_trial_bound instead."""
        steps = self.settings.tuning.intra_trial_steps
        intra = self.preset.intra
        if self.intra_count is not None and self.height * self.width >= intra.coarse_min_pixels:
            bound = self.settings.tuning.large_trial_bound * self.settings.tuning.p_preference
            return p_cost > bound * self.last_fit_j
        if steps <= 0 or self.intra_count is None:
            return True
        assert self.lam is not None
        config = replace(intra, max_steps=steps, anneal_steps=min(intra.anneal_steps, steps // 4))
        splats, _ = self._fit(image, self.intra_count, None, config, self.settings.seed + index, None)
        _, sse, bits = self._intra_cost_at(splats, image, self.intra_scale)
        bound = INTRA_TRIAL_BOUND * self.settings.tuning.p_preference * (sse + self.lam * bits)
        return p_cost > bound

    def _moved_beats_intra(self, moved: _PictureChoice) -> bool:
        """The M-frame after all (tuning.real_intra_vs_m): the I-frame was chosen because the M-frame
        cost more than the estimate (the GOP's first I-frame's J), but the I-frame just fitted costs
        more than the M-frame (J x m_preference). On 1080p street the estimate was stale by 12%
        at frame 26 (M 3035, estimate 3001, the real I-frame 3369)."""
        if not self.settings.tuning.real_intra_vs_m or self.lam is None:
            return False
        i_sse, i_bits = self.intra_cost  # the I-frame just fitted, not the estimate
        return moved[2] * self.settings.tuning.m_preference < i_sse + self.lam * i_bits

    def _real_intra_over_m(self, index: int, image: torch.Tensor, moved: _PictureChoice
                           ) -> tuple[CodedFrame, _Reference, float] | None:
        """At what looks like a cut, a real I-frame fit when its J beats the M-frame's (an M-frame
        with residual splats can beat the I-frame estimate there and still lose to a real I-frame);
        else None, the encoder's I-frame state as it was."""
        return self._real_intra_if_cheaper(index, image, moved[2] * self.settings.tuning.p_preference)

    def _p_fit_pointless(self) -> bool:
        """The last P-fit cost more than tuning.m_skip_ratio x its M-frame: skip the P-fit, at most
        tuning.m_skip_frames frames in a row (then try again: the M-frames' pictures age)."""
        tuning = self.settings.tuning
        if (tuning.m_skip_ratio > 0 and self.p_over_m is not None and self.p_over_m > tuning.m_skip_ratio
                and self.p_fits_skipped < self.p_skip_run):
            self.p_fits_skipped += 1
            return True
        self.p_fits_skipped = 0
        return False

    def _p_fits_after_intra(self) -> None:
        """Fresh splats make the next P-fit worth trying, unless P-fits keep losing by far on frames
        of more than SEARCH_PIXELS (RDTuning.m_skip_over_intra): then the run of skips goes on."""
        if not (self.large and self.settings.tuning.m_skip_over_intra and self.p_far_losses):
            self.p_over_m = None

    def _note_p_over_m(self) -> None:
        """After a P-fit: a second loss by more than tuning.m_skip_ratio in a row doubles the run
        of P-fits skipped next on frames of more than SEARCH_PIXELS (up to tuning.m_skip_backoff),
        where a P-fit costs seconds; a P-fit that does not lose so
        resets it to tuning.m_skip_frames."""
        tuning = self.settings.tuning
        if self.p_over_m is not None and tuning.m_skip_ratio > 0 and self.p_over_m > tuning.m_skip_ratio:
            if self.p_far_losses and self.large and tuning.m_skip_backoff > self.p_skip_run:
                self.p_skip_run = min(2 * self.p_skip_run, tuning.m_skip_backoff)
            self.p_far_losses += 1
        else:
            self.p_far_losses, self.p_skip_run = 0, tuning.m_skip_frames

    def _note_p_attempt(self, p_over_i: float) -> None:
        """Count clear losses of P-fits made right after an I-frame; enough in a row and the next
        few frames skip the P-fit (RDTuning.p_skip_losses). A P-frame that wins resets the count."""
        tuning = self.settings.tuning
        clear = self.gop_length == 1 and p_over_i > tuning.p_clear_loss
        self.p_losses = self.p_losses + 1 if clear else 0
        if tuning.p_skip_losses > 0 and self.p_losses >= tuning.p_skip_losses:
            self.p_skips_left = tuning.p_skip_frames

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
    # constant quality: every decision by D + lambda R (rd.py)

    def _intra_cost_estimate(self) -> float:
        """J of an I-frame here: what the last one cost (same scene, same lambda)."""
        assert self.lam is not None
        i_sse, i_bits = self.intra_cost
        return i_sse + self.lam * i_bits

    def _intra_is_cheaper(self, warm: WarmStart) -> bool:
        """An obvious cut, before any fitting: even a P-fit that removed as much of the warm start's
        error as the best one so far (P_SSE_RATIO_FLOOR), and cost no bits, would cost more than an
        I-frame. Anything less obvious is decided on the fitted P-frame's real cost (encode)."""
        assert self.lam is not None
        warm_sse = 10.0 ** (-warm.psnr / 10.0) * self.height * self.width
        return min(self.p_sse_ratio, P_SSE_RATIO_FLOOR) * warm_sse > self._intra_cost_estimate()

    def _intra_cost_at(self, splats: Splats, image: torch.Tensor, scale: float) -> tuple[float, float, float]:
        """(J, weighted SSE, payload bits) of coding `splats` as an I-frame at step scale `scale`."""
        assert self.lam is not None
        steps = self._intra_base_steps().scaled(scale)
        q = quantise(splats, steps)
        bits = 8.0 * len(encode_intra_frame(q, steps).payload)
        sse = weighted_sse(render_splats(dequantise(q, steps), self.height, self.width), image, self.weights)
        return sse + self.lam * self.settings.tuning.ip_lambda_ratio * bits, sse, bits

    def _intra_base_steps(self) -> QuantSteps:
        """The constant-quality I-frame's steps before the step scale (rd.intra_base_steps)."""
        assert self.lam is not None
        return intra_base_steps(self.settings.tuning, self.lam)

    def _best_step_scale(self, splats: Splats, image: torch.Tensor) -> tuple[float, float, float]:
        """The quantiser step scale of least J on a small grid around the last I-frame's, with its
        (SSE, bits): steps follow lambda (RD-optimal steps scale as sqrt(lambda)), found by search."""
        if not self.settings.tuning.step_search:
            _, sse, bits = self._intra_cost_at(splats, image, 1.0)
            return 1.0, sse, bits
        tried = {scale * self.intra_scale: self._intra_cost_at(splats, image, scale * self.intra_scale)
                 for scale in STEP_SCALE_GRID}
        best = min(tried, key=lambda s: tried[s][0])
        return best, tried[best][1], tried[best][2]

    def _intra_rd(self, index: int, image: torch.Tensor) -> tuple[CodedFrame, _Reference, float]:
        """I-frame at lambda * tuning.ip_lambda_ratio: the step scale by search, the splat count from
        the model D ~ N^-beta, R ~ bits/splat * N (one refit when the first count was far off)."""
        assert self.lam is not None
        seed = self.settings.seed + index
        lam = self.lam * self.settings.tuning.ip_lambda_ratio
        pixels = self.height * self.width
        guess = (self.settings.tuning.large_pixels_per_splat if pixels >= self.preset.intra.coarse_min_pixels
                 else PIXELS_PER_SPLAT_GUESS)
        fixed = self.settings.intra_splats
        count = fixed or self.intra_count or max(MIN_SPLATS, int(pixels // guess))
        first: Splats | None = None
        probe = None
        if fixed is None and self.settings.tuning.coarse_count_probe:
            count, probe = self._coarse_count_probe(image, count, seed, lam)
        for attempt in range(1 if fixed is not None else 2):
            coarse = probe[0] if probe is not None and attempt == 0 else None
            splats, fit_psnr = self._fit(image, count, first, self._refit_config(first), seed, None, coarse)
            scale, sse, bits = self._best_step_scale(splats, image)
            if coarse is not None and probe is not None:
                self.coarse_sse_per_bit = (sse / max(bits, 1.0)) / max(probe[1], 1e-30)
            best = self._count_answer(count, sse, bits, lam)
            if attempt == 1 or abs(math.log2(best / count)) < COUNT_BAND:
                break
            count = best
            if self.settings.tuning.warm_count_refit and pixels >= self.preset.intra.coarse_min_pixels:
                first = splats
        self.intra_scale = scale
        self.intra_count = count if attempt == 1 else best
        self.steps = self._intra_base_steps().scaled(scale)
        final = len(splats)
        if self.settings.tuning.count_follows_lambda:
            # The count the model asks for, within the band that needed no refit: the fine-tune
            # prunes the least useful splats or adds some at the residual. Else every lambda whose
            # answer falls in that band codes the same count (a flat stretch of rate against Q).
            final = int(min(max(best, final * 2.0 ** -COUNT_BAND), final * 2.0 ** COUNT_BAND))
            self.intra_count = final
        splats, _ = self._fit(image, final, splats, self.preset.fine_tune, seed, self.steps)
        q = quantise(splats, self.steps)
        coded = encode_intra_frame(q, self.steps)
        q = q.select(coded.order)
        decoded = dequantise(q, self.steps, image.device)
        sse = weighted_sse(render_splats(decoded, self.height, self.width), image, self.weights)
        self.intra_cost = (sse, 8.0 * len(coded.payload))
        self.last_fit_j = sse + self.lam * 8.0 * len(coded.payload)
        return coded, _Reference(q, decoded), fit_psnr

    def _count_answer(self, count: int, sse: float, bits: float, lam: float) -> int:
        """The count model's splat count for a fit of `count` splats coded in `bits` at weighted
        SSE `sse`: D ~ N^-beta and R ~ N, so J = D + lam R is least where beta D = lam R."""
        beta = COUNT_EXPONENT
        best = count * (beta * sse / max(lam * bits, 1e-12)) ** (1.0 / (1.0 + beta))
        return int(min(self.rate.max_splats, max(MIN_SPLATS, best)))

    def _coarse_count_probe(self, image: torch.Tensor, count: int, seed: int, lam: float
                            ) -> tuple[int, tuple[tuple[Splats, int], float] | None]:
        """On frames fitted coarse to fine (RDTuning.coarse_count_probe): the count model asked of
        the coarse stage alone, its SSE per bit scaled by what the last I-frame's whole fit made of
        its own, before the fine stage is spent on a count it would refit. Returns the count to fit
        and the coarse stage at that count with its SSE per bit (None: no coarse stage here)."""
        def stage(n: int) -> tuple[tuple[Splats, int], float, float] | None:
            coarse = coarse_fit(image, n, self.preset.intra, seed, self.progress, CHANNEL_WEIGHTS)
            if coarse is None:
                return None
            _, sse, bits = self._best_step_scale(coarse[0], image)
            return coarse, sse, bits

        probe = stage(count)
        if probe is not None:
            best = self._count_answer(count, probe[1] * self.coarse_sse_per_bit, probe[2], lam)
            if abs(math.log2(best / count)) >= COUNT_BAND:
                count, probe = best, stage(best)
        return count, None if probe is None else (probe[0], probe[1] / max(probe[2], 1.0))

    def _refit_config(self, first: Splats | None) -> FitConfig:
        """The I-fit's config; for the count model's second fit from the first one's splats
        (RDTuning.warm_count_refit), its fine stage alone: the splats the fine stage would start
        from are there, pruned of the least useful or added to at the residual."""
        intra = self.preset.intra
        if first is None:
            return intra
        return replace(intra, max_steps=max(1, round(intra.fine_steps * intra.max_steps)), coarse_steps=0.0)

    def _inter_rd(self, index: int, image: torch.Tensor, warm: WarmStart
                  ) -> tuple[CodedFrame, _Reference, float, float]:
        """P-frame by RD: splats that hurt are deleted, the most sensitive survivors and some new
        splats are fitted, then every change is kept only where its distortion gain exceeds lambda
        times its bits, and every new splat only where its gain exceeds lambda times a new splat's
        bits. How many to try next time follows how many paid this time."""
        assert self.lam is not None and self.reference is not None
        prev = self.reference
        n_prev = len(prev.q)
        weights = self.weights
        cost = removal_cost(warm.splats.colors, warm.splats.chol, warm.wt_residual, weights)
        hurting = int((cost < 0).sum())
        if self.add_count is None:
            self.add_count = max(1, n_prev // 50)
        tuning = self.settings.tuning
        result = fit_inter(image, warm, self.steps, n_add=self.add_count, n_prune=hurting,
                           active_fraction=self.active_fraction,
                           iterations=round(self.preset.inter_steps * tuning.inter_steps_scale),
                           extra_iterations=round(self.preset.inter_steps * tuning.inter_extra_scale),
                           channel_weights=CHANNEL_WEIGHTS, seed=self.settings.seed + index)
        q, kept_rows, new_keep = self._rd_prune_changes(image, result, prev.q)
        kept = result.kept
        n_kept = len(kept)
        q = q.select(torch.cat([torch.arange(n_kept), n_kept + torch.nonzero(new_keep).flatten()]))
        coded = encode_inter_frame(q, prev.q, kept, warm.vectors)
        decoded = dequantise(q, self.steps, image.device)
        rendered = render_splats(decoded, self.height, self.width)
        sse = weighted_sse(rendered, image, weights)
        # The decisions above are per splat, from closed forms; the frame as a whole must still beat
        # coding nothing but the warm start (every splat as it was: a few bytes).
        skip_coded = encode_inter_frame(warm.base, prev.q, torch.arange(n_prev), warm.vectors)
        skip_render = render_splats(warm.splats, self.height, self.width)
        skip_sse = weighted_sse(skip_render, image, weights)
        if skip_sse + self.lam * 8.0 * len(skip_coded.payload) <= sse + self.lam * 8.0 * len(coded.payload):
            q, kept, n_kept, coded, decoded = warm.base, torch.arange(n_prev), n_prev, skip_coded, warm.splats
            rendered, sse, kept_rows, new_keep = skip_render, skip_sse, 0, torch.zeros(0, dtype=torch.bool)
        q = q.select(coded.order)
        decoded = decoded.select(coded.order.to(decoded.means.device))
        warm_sse = 10.0 ** (-warm.psnr / 10.0) * self.height * self.width
        self.p_sse_ratio = 0.5 * self.p_sse_ratio + 0.5 * min(1.0, sse / max(warm_sse, 1e-12))
        self.p_bits = 0.5 * self.p_bits + 0.5 * 8.0 * len(coded.payload)
        # Adapt what is tried next: as many new splats as paid (with room to grow), and an active
        # share that follows how many of the active survivors kept their change.
        n_active = int(result.active[:n_kept].sum())
        kept_share = kept_rows / n_active if n_active else 0.0
        self.active_fraction = min(1.0, max(tuning.min_active, self.active_fraction * (0.5 + kept_share)))
        accepted = int(new_keep.sum())
        floor = int(n_prev * tuning.min_new_share)
        self.add_count = int(min(max(1, n_prev // 5), max(1, floor, 2 * accepted)))
        fit_psnr = weighted_psnr(rendered, image, CHANNEL_WEIGHTS)
        return coded, _Reference(q, decoded), fit_psnr, sse + self.lam * 8.0 * len(coded.payload)

    def _rd_prune_changes(self, image: torch.Tensor, result: InterResult, prev: QuantisedSplats
                          ) -> tuple[QuantisedSplats, int, torch.Tensor]:
        """Revert the survivors' changes and flag the new splats that do not pay for their bits.
        Returns (integers with the changes reverted, changes kept, bool [n_new] new splats to keep)."""
        assert self.lam is not None
        q, kept, base = result.q, result.kept, result.base
        n_kept = len(kept)
        trial = encode_inter_frame(q, prev, kept, result.vectors)  # real statistics of this frame's streams
        decoded = dequantise(q, self.steps)
        residual = render_splats(decoded, self.height, self.width) - image
        wt_new = residual_products(decoded, residual)
        # New splats: the distortion each one removes against lambda x the bits a new splat costs.
        n_new = len(q) - n_kept
        new_bits = sum(s.model_bits + s.ideal_bits for s in trial.stats.streams if s.name.startswith("new."))
        new_keep = torch.ones(n_new, dtype=torch.bool)
        if n_new:
            new = decoded.select(torch.arange(n_kept, len(q)))
            gain = removal_cost(new.colors, new.chol, wt_new[n_kept:], self.weights)
            new_keep = gain > self.lam * new_bits / n_new
            if not self.settings.tuning.rd_new:
                new_keep[:] = True
        # Changed survivors: the distortion the change removes against lambda x its bits.
        cur = q.as_array()[:n_kept]
        old = base.select(kept).as_array()
        changed = (cur != old).any(axis=1).nonzero()[0]
        if len(changed) == 0:
            return q, 0, new_keep
        bits = change_bits(cur[changed] - old[changed], n_kept)
        rows = torch.from_numpy(changed)
        new_version = decoded.select(rows)
        old_version = dequantise(base.select(kept[rows]), self.steps)
        wt_old = residual_products(old_version, residual)
        cost = replacement_cost(new_version, old_version, wt_new[rows], wt_old, self.weights)
        revert = cost < self.lam * torch.from_numpy(bits).float()
        if not self.settings.tuning.rd_changes:
            revert[:] = False
        q = revert_rows(q, base, kept, rows[revert])
        return q, int((~revert).sum()), new_keep

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
             seed: int, steps: QuantSteps | None, coarse: tuple[Splats, int] | None = None
             ) -> tuple[Splats, float]:
        """Fit `count` splats (from `init` when given, from the coarse stage `coarse` when given);
        with `steps`, through the quantiser. Returns the splats and their PSNR in the fitting space."""
        transform: Callable[[Splats], Splats] | None = None
        if steps is not None:
            def transform(s: Splats) -> Splats:
                return fake_quantise(s, steps)
        splats, stats = fit_frame(image, count, init, config=config, seed=seed, progress=self.progress,
                                  channel_weights=CHANNEL_WEIGHTS, param_transform=transform, coarse=coarse)
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
        coded = encode_inter_frame(q, prev.q, result.kept, result.vectors)
        if plan.bits is not None:
            coded, q = revert_to_budget(result, prev.q, coded, plan.bits - 8 * record_overhead())
        n_kept = len(result.kept)
        changed = _changed_rows(q, result.base, result.kept)
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
    """How many survivors differ from their predicted (previous, motion-compensated) integers."""
    n = len(kept)
    if n == 0:
        return 0
    diff = ((q.means[:n] != prev.means[kept]).any(1) | (q.chol[:n] != prev.chol[kept]).any(1)
            | (q.colors[:n] != prev.colors[kept]).any(1))
    return int(diff.sum())


def file_header(info: VideoInfo, settings: EncoderSettings, target_text: str | None = None) -> FileHeader:
    """The .gsvc header an encode of `info` with `settings` writes (frame count patched on close).
    target_text: what the `target` key says, when not the settings' own target (a --bpp search)."""
    if info.color_matrix not in ("bt601", "bt709"):  # the header has no code for BT.2020
        raise UsageError(f"{info.path}: {info.color_matrix} colour is not supported (.gsvc describes "
                         "bt601 or bt709 only)", hint="convert first, e.g. ffmpeg -vf colorspace=bt709")
    return FileHeader(
        width=info.width, height=info.height, fps_num=info.fps.numerator, fps_den=info.fps.denominator,
        colour_space="yuv", matrix=info.color_matrix, colour_range=info.color_range,
        params={"encoder": ENCODER_NAME, "pix_fmt": info.pix_fmt, "preset": settings.preset,
                "gop": str(settings.gop), "target": target_text or settings.target.describe(),
                "scenecut_db": f"{settings.scenecut_db:g}",
                "channel_weights": ",".join(f"{w:g}" for w in CHANNEL_WEIGHTS),
                **info.description_params()},  # sar, colour primaries/transfer of the source
    )


def file_overhead(header: FileHeader, frame_count: int | None) -> int:
    """Bytes of a file's header, index and trailer: what --bpp must leave room for (with an unknown
    count, the index grows as frames come; rate control accounts for it per frame)."""
    return len(header.to_bytes()) + index_and_trailer_size(frame_count or 0)


def encode_frames(frames: Iterable[Frame], info: VideoInfo, settings: EncoderSettings, *,
                  frame_count: int | None, overhead_bytes: int, first_index: int = 0,
                  progress: ProgressCallback | None = None, steer: QualitySteer | None = None
                  ) -> Iterator[tuple[int, CodedFrame, FrameReport, torch.Tensor]]:
    """Encode up to `frame_count` frames as one closed sequence that opens with an I-frame.

    Yields (index, coded frame, report, decoded YUV 4:4:4) per frame; index counts from
    `first_index`, which also seeds the fitter, so a chunk of a video codes exactly as it would
    wherever it runs. `overhead_bytes`: the file bytes outside frame records that this sequence's
    --bpp budget must pay for. Shared by `encode_video` and chunked encoding (gsvc_cli.chunked).
    steer: the quality frame by frame of a constant-quality encode (a steered --bpp pass).
    """
    encoder = Encoder(info, settings, frame_count, overhead_bytes, progress)
    spent = 0.0
    for k, frame in enumerate(frames):
        if frame_count is not None and k >= frame_count:
            break
        frame_type = None
        if steer is not None:
            encoder.set_quality(steer.quality_at(k, spent))
            frame_type = steer.frame_type_at(k)
        coded, rep, decoded = encoder.encode(first_index + k, frame, frame_type)
        spent += rep.bits
        yield first_index + k, coded, rep, decoded


def encode_video(frames: Iterable[Frame] | Callable[[], Iterable[Frame]], info: VideoInfo, output: Path,
                 settings: EncoderSettings, *, frame_count: int | None, overwrite: bool = False,
                 progress: ProgressCallback | None = None,
                 on_frame: Callable[[int, torch.Tensor], None] | None = None) -> EncodeSummary:
    """Encode `frame_count` frames into `output` (atomically: nothing appears unless all succeed).

    frames: the frames, or a function that yields them afresh on every call. With a function and a
    --bpp target, the encode is a search over the constant-quality scale: whole encodes at a few
    qualities (rate_control.next_quality) until one lands within BPP_TOLERANCE of the target; the
    last pass is the file. With an iterable, --bpp uses the single-pass frame-budget controller.
    on_frame(index, yuv444 [3,H,W] in [0,1]) receives the encoder's own reconstruction of each frame,
    which the decoder reproduces exactly (single-pass encodes only).
    frame_count None: as many as `frames` yields (standard input); the single-pass --bpp controller
    then plans over a growing horizon (RateController) and the header's frame count is written on
    close, as always.
    """
    file_header(info, settings)  # refuses what the header cannot describe, before any work
    if callable(frames) and settings.target.bpp is not None:
        return _encode_to_bpp(frames, info, Path(output), settings, frame_count=frame_count,
                              overwrite=overwrite, progress=progress)
    source = frames() if callable(frames) else frames
    return _encode_pass(source, info, Path(output), settings, frame_count=frame_count, overwrite=overwrite,
                        progress=progress, on_frame=on_frame)


def _encode_to_bpp(frames: Callable[[], Iterable[Frame]], info: VideoInfo, output: Path,
                   settings: EncoderSettings, *, frame_count: int | None, overwrite: bool,
                   progress: ProgressCallback | None) -> EncodeSummary:
    """--bpp as a search over --quality, each pass a whole encode into a temp folder beside the
    output: constant-quality passes first (rate_control.next_quality); when none lands within
    BPP_TOLERANCE (the rate jumps between neighbouring qualities), steered passes whose quality
    moves frame by frame along the closest pass's bits, with its I/P pattern (rate_control.QualitySteer),
    each at the scale of a secant over the steered passes so far (rate_control.next_scale); a one-frame
    input (a picture) instead gets passes at fixed splat counts (EncoderSettings.intra_splats). The
    pass that lands (else the closest to the target) is moved onto the output."""
    assert settings.target.bpp is not None
    target = settings.target.bpp
    check_output_path(output, overwrite)
    start = time.perf_counter()
    parent = output.parent if str(output.parent) else Path(".")
    total = BPP_SEARCH_PASSES + BPP_STEER_PASSES
    passes: list[EncodeSummary] = []

    def miss(summary: EncodeSummary) -> float:
        return abs(math.log(summary.bpp / target))

    def landed() -> EncodeSummary | None:
        best = min(passes, key=miss)
        return best if abs(best.bpp / target - 1) <= BPP_TOLERANCE else None

    def run(quality: float, steer: QualitySteer | None, splats: int | None = None) -> EncodeSummary:
        report(progress, "pass", len(passes) + 1, total, quality=quality, steered=steer is not None,
               scale=steer.scale if steer is not None else None)
        how = (f"quality={quality:.3f}" + (", steered" if steer is not None else "")
               + (f", {splats} splats" if splats is not None else ""))
        summary = _encode_pass(frames(), info, Path(work) / f"pass{len(passes)}.gsvc",
                               replace(settings, target=RateTarget(quality=quality), intra_splats=splats),
                               frame_count=frame_count,
                               overwrite=True, progress=progress, on_frame=None,
                               target_text=f"bpp={target:g} ({how})", steer=steer)
        passes.append(summary)
        return summary

    with tempfile.TemporaryDirectory(prefix=f".{output.stem}.passes.", dir=parent) as work:
        tried: dict[float, float] = {}
        quality: float | None = first_quality(target)
        while quality is not None and quality not in tried and len(passes) < BPP_SEARCH_PASSES:
            tried[quality] = run(quality, None).bpp
            quality = next_quality(tried, target)
        reference = min(passes, key=miss)
        assert reference.quality is not None
        frame_bits = [float(f.bits) for f in reference.frames]
        frame_types = "".join(f.frame_type for f in reference.frames)
        overhead = 8.0 * reference.file_bytes - sum(frame_bits)  # header, index, trailer
        want = target * info.width * info.height * len(frame_bits) - overhead  # bits for the frames
        points = [(1.0, sum(frame_bits))]  # (scale, frame bits); the reference is the pass at scale 1
        # A frame's rate answers lambda less than a whole clip's (the P-frames' counts adapt over
        # several frames), so the steer moves at least at the typical whole-clip slope.
        slope = max(rate_slope(tried), DB_PER_RATE_DOUBLING)
        for _ in range(BPP_STEER_PASSES if len(frame_bits) > 1 else 0):
            if landed() is not None:
                break
            scale = next_scale(points, want)
            steer = QualitySteer(tuple(frame_bits), reference.quality, scale, slope, frame_types)
            steered = run(reference.quality, steer)
            points.append((scale, float(sum(f.bits for f in steered.frames))))
        # A picture: its rate is the I-frame's, close to proportional to the splat count (which Q
        # may leave unchanged over a stretch), so its passes set the count, by the same secant.
        for _ in range(BPP_STEER_PASSES if len(frame_bits) == 1 else 0):
            if landed() is not None:
                break
            counts = [(p.frames[0].n_splats, float(p.frames[0].bits)) for p in passes]
            count = round(next_scale(counts, want))
            if count < MIN_SPLATS or count in {c for c, _ in counts}:
                break
            run(reference.quality, None, count)
        chosen = landed() or min(passes, key=miss)
        os.replace(chosen.path, output)
    return replace(chosen, path=output, seconds=time.perf_counter() - start, passes=len(passes))


def _encode_pass(frames: Iterable[Frame], info: VideoInfo, output: Path, settings: EncoderSettings, *,
                 frame_count: int | None, overwrite: bool, progress: ProgressCallback | None,
                 on_frame: Callable[[int, torch.Tensor], None] | None,
                 target_text: str | None = None, steer: QualitySteer | None = None) -> EncodeSummary:
    """One encode of `frame_count` frames into `output` (atomically); `steer`: see encode_frames."""
    start = time.perf_counter()
    header = file_header(info, settings, target_text)
    overhead = file_overhead(header, frame_count)
    reports: list[FrameReport] = []
    total_bits = 8 * overhead
    with GsvcWriter(output, header, overwrite=overwrite) as writer:
        for index, coded, rep, decoded in encode_frames(frames, info, settings, frame_count=frame_count,
                                                        overhead_bytes=overhead, progress=progress,
                                                        steer=steer):
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
                         time.perf_counter() - start, quality=settings.target.quality)

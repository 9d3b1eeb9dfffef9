"""Rate-distortion decisions with one Lagrange multiplier, as x264's RDO and HM's lambda decide.

Every choice of the constant-quality encoder minimises J = D + lambda * R, where
    D: the fitting space's distortion as a sum over pixels, the 6:1:1-weighted squared error of
       [0,1] YUV 4:4:4 images (weighted SSE = loss.weighted_mse * pixels), and
    R: coded bits (real payload bits where a trial encode gives them, else a per-symbol estimate
       from the frame's own empirical statistics).
The scale users see is the quality Q (--quality, higher is better): lambda = 2 ln2 * 10^(-Q/10).
At high rate an image codec's distortion falls as MSE ~ 2^(-2 bits/pixel), so its slope is
dMSE/d(bits/pixel) = -2 ln2 MSE: with this lambda the optimum sits where MSE ~ 10^(-Q/10), i.e.
near Q dB fitting-space PSNR. Splats are far from that high-rate regime, so Q is a scale, not a
promise: monotonic in rate and quality, measured in BENCHMARKS.md.

The per-splat decisions of a P-frame (keep a change or revert it; keep a new splat or drop it, by
densify.removal_cost) need the distortion a single splat's change causes, for thousands of splats
at once. With the residual r = render - image and a splat contributing c * w(p), the closed forms
below give it from one W^T r product (the colour gradient the fitter already computes) and Gaussian integrals:
    removing contribution b:          dD = -2 <r, b> + |b|^2
    replacing contribution b with a:  dD = 2 <r, a - b> + |a - b|^2
with <r, b> = c_b . (W_b^T r), |b|^2 = |c_b|^2 * integral(w_b^2), <a, b> = c_a . c_b * integral(w_a w_b),
channels weighted. The integrals ignore the weight cap, the 1/255 cut-off and the final clamp,
which change them little; every decision is then re-checked by the real encode that follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gsvc_cli.codec.bitstream.dequant import QuantSteps
from gsvc_cli.codec.encoder.colour_refit import apply_wt, splat_energy
from gsvc_cli.codec.encoder.loss import clamped_error_sums
from gsvc_cli.codec.splats import Splats

LN2 = math.log(2.0)


@dataclass(frozen=True)
class RDTuning:
    """Switches and constants of the constant-quality encoder, so a benchmark can measure each idea
    with and without it in one run (bench/rd.py --gsvc NAME=quality:...:FIELD=VALUE).

    ip_lambda_ratio: I-frames use lambda * this (their quality carries into the P-frames).
    cost_ip: I or P by estimated cost (else only --gop and the --scenecut dB rule make I-frames).
    rd_changes: revert survivor changes whose distortion gain is below lambda x their bits.
    rd_new: drop new splats whose distortion gain is below lambda x a new splat's bits.
    step_search: I-frame quantiser steps by a J search (else the default steps).
    local_motion: warm-start P-frames with block motion per splat (else a global shift only).
    p_preference: a fitted P-frame becomes an I-frame only when its J exceeds the last I-frame's J
    times this. An I-frame's J leaves out what the P-frame's splats carry on into the next frames (on
    cuts_qcif the P/I ratio of motion frames without a cut reached 1.04, of its real cuts 5+).
    inter_steps_scale: P-fit iterations as a multiple of the preset's (an experiment knob).
    inter_extra_scale: up to this multiple of the preset's P-fit iterations more, while the fit's
    loss still falls (inter_fit.CONTINUE_GAIN).
    motion_field: P-frames carry the warm start's motion field, so centres that follow it cost
    nothing (else every moved centre is coded as a difference from the previous one).
    motion_by_cost: a motion field (a global shift, then block motion) is used when the squared
    error it removes from the warm start exceeds lambda times its bits; else when it raises the
    warm start's PSNR by motion_gain_db.
    motion_from_source: motion (the global shift and the block field) is measured from the previous
    source frame to this one, not from the render of the previous splats (constant-quality mode).
    motion_smoothing: passes of the 3x3 average over the block field before splats follow it (more
    passes: a more rigid field, closer to one shift).
    coarse_steps, fine_steps: I-frames of at least FitConfig.coarse_min_pixels are fitted coarse to
    fine: coarse_steps x the preset's steps on the frame downscaled 2x, then fine_steps x them at
    full size (coarse_steps 0: every step at full size).
    large_pixels_per_splat: the first I-frame's splat count, before the count model takes over, is
    one per this many pixels on frames of at least FitConfig.coarse_min_pixels (smaller frames: one
    per gop.PIXELS_PER_SPLAT_GUESS). Large frames need far fewer splats per pixel, and a probe fit at
    a count near the answer is both cheaper and a shorter extrapolation for the count model.
    p_skip_losses, p_skip_frames, p_clear_loss: after p_skip_losses P attempts in a row, each right
    after an I-frame, lost by p_clear_loss x the I-frame's J or more (content no P-frame can follow:
    street's parallax), the next p_skip_frames frames go straight to I without the P-fit, and then P
    is tried again (x264's lookahead makes the same call from cheaper estimates). 0 losses: always try.
    count_follows_lambda: an I-frame's quantisation-aware fine-tune moves its splat count to the
    count model's answer when that is within gop.COUNT_BAND of the fitted count (pruning the least
    useful splats or adding some at the residual); else the fitted count is kept, and every lambda
    whose answer falls in the band codes the same count (one-frame --bpp searches then cannot land:
    kodim01 at 1.0 bpp stayed at 0.943 over qualities 29.5-30.3).
    picture_frames: a frame may be an M-frame (the previous decoded picture moved block by block,
    whole or quarter pixels, no splats; gsvc_cli.codec.moved_picture) when its J is below the splat P-frame's
    (and below the I-frame's where an I-frame was chosen); the splat state then waits for the next
    splat frame, which follows the motion from the last splat frame's source.
    m_preference: an M-frame is chosen only when its J times this is below the P-frame's (or the
    I-frame's): a splat frame's quality carries into the frames after it, an M-frame's picture
    only ages (on the Kodak pan and the scene-cut clip, choosing M by J alone lost 6%).
    real_intra_after_m: a P-fit from a splat state older than the previous frame (M-frames came
    between) whose J exceeds the I-frame estimate (the GOP's first I-frame's J) is compared with a
    real I-frame fit (its J times p_preference) instead of the estimate alone.
    real_intra_vs_m: an I-frame chosen over an M-frame by the estimate alone is coded only when the
    real I-fit's J is below the M-frame's (times m_preference); else the M-frame (off: the
    estimate decides).
    intra_trial_steps: before that real I-frame fit, on frames fitted at full size only, a fit of
    this many steps; when even INTRA_TRIAL_BOUND times its J (times p_preference) exceeds the
    P-frame's J, the full fit cannot win and is not run. 0: always the full fit (the ablation).
    large_trial_bound: on frames fitted coarse to fine, that real I-frame fit runs only when the
    P- or M-frame's J exceeds this times p_preference times the J of the last real I-fit (coded,
    or a trial that lost; 0: always).
    intra_steps_scale: I-frame fits of frames below the coarse-to-fine size (FitConfig.
    coarse_min_pixels, fitted at full size only) run the preset's small_intra_steps times this
    (the ablations: 250 / 2400 gives fast's steps before c1782b0, 0.25 its 600 of c1782b0, 0.5
    its 1200 of f7eb77e).
    intra_lr_scale, intra_anneal_steps: those same fits' learning rates times intra_lr_scale, and
    FitConfig.anneal_steps (the short decay on the plateau instead of stopping there); 1 and 0
    with intra_steps_scale 0.5 give the I-fits of format 10.0's first encoder (f7eb77e..a406ddf).
    m_skip_ratio, m_skip_frames: when the last P-fit's J exceeded m_skip_ratio x its M-frame's, the
    next frames skip the P-fit (M or I by cost), at most m_skip_frames in a row; 0: always try P.
    m_skip_backoff: with more than m_skip_frames, on frames of more than motion.SEARCH_PIXELS,
    each P-fit that loses so again when tried after a run of skips doubles the next run, up to
    this many frames (one that does not lose so resets it): where P-fits never win (street 1080p:
    none of 49 inter frames), they cost ~4 s a try.
    m_skip_over_intra: on those frames, while P-fits keep losing so, an I-frame does not end the run
    of skips (else the frame after every I-frame tries a P-fit: street 1080p tried and lost 3 of
    its 5 P-fits, 5-11 s each, right after an I-frame).
    A speed switch: the P-fit is most of a frame's encode time, and at low qualities M-frames win
    most frames.
    warm_count_refit: on I-frames fitted coarse to fine, when the count model asks for a second
    fit (its answer COUNT_BAND or more from the first count), that fit starts from the first one's
    splats (the least useful pruned, or new ones added at the residual) and runs the fine stage
    alone, not a whole coarse-to-fine fit again (street 1080p: frames 0 and 53, 20 s each).
    coarse_count_probe: on I-frames fitted coarse to fine, the count model is first asked of the
    coarse stage alone (its SSE per bit scaled by the whole fit's over its coarse stage's, as the
    last such I-frame measured; gop.COARSE_SSE_PER_BIT before the first), and a count it calls far
    off is fitted from the coarse stage on: a refit then costs a coarse stage, not a whole fit
    (street 1080p at Q 27: frames 0 and 53 fitted twice, 20 s each). The whole fit's answer still
    refits as before when far off.
    picture_rd_search: an M-frame's vectors are chosen by D + lambda R per block (picture_motion),
    else the least-error vectors of the P-frames' block search, rounded to whole pixels.
    picture_quarter: an M-frame's field may be in quarter pixels (read through a cubic): each
    block size's RD field is refined by half and quarter pixels and kept when its J is lower.
    picture_cells: the block sizes (pixels, comma-separated) an M-frame's field is tried at.
    cell_memory: on frames of more than motion.SEARCH_PIXELS, an M-frame search tries every block
    size of picture_cells only every this many frames; the frames between try only the sizes that
    won since (Encoder._cells_to_try; 0: every size on every frame). At 1080p the 32- and 16-pixel
    searches cost a third of an M-frame and won 2 of street's 49.
    quarter_neighbours: the quarter-pixel refinement also tries each cell's left and upper
    neighbours' vectors.
    m_copy_weight: in the choice between an M-frame and the fitted P-frame, both distortions
    count 1 + this x (M-frames since the last splat frame, up to 8) times (0: off).
    picture_residual: an M-frame may add residual splats to its moved picture (kind 4), fitted at
    each of these densities (pixels per splat, comma-separated) and kept when J is lower ("": off),
    on frames below the preset's residual_max_pixels.
    large_picture_residual, large_residual_steps, large_residual_refit: the same on frames of at
    least the preset's residual_max_pixels (fast's 1280x720 and up): these densities ("": none),
    fits of at most this many steps, coarse to fine as the I-frames, whose last colour refits take
    this many iterations (FitConfig.final_refit_iters; a residual fit there costs seconds).
    large_residual_coarse, large_residual_fine, large_residual_inner_refit: those fits' coarse and
    fine stages (FitConfig.coarse_steps and fine_steps, fractions of large_residual_steps) and the
    iterations of their other colour refits (FitConfig.refit_iters: each stage's first, and after
    each swap). Large splats on a residual lose little at half size, and every full-size step or
    refit iteration costs about three half-size ones. large_residual_coarse_factor: those fits'
    coarse stage sees the frame averaged over blocks of this many pixels square
    (FitConfig.coarse_factor; 4: a sixteenth of the pixels). large_residual_fine_factor: their fine
    stage too on the frame averaged over blocks of this many pixels square, the colours then refitted
    at full size (FitConfig.fine_factor; 1: the fine stage at full size).
    cut_by_picture: a frame whose best moved picture is barely better than its own 40x40 block
    means is an I-frame (Encoder._moved_picture_is_cut), without trying P or M (off: J decides).
    large_residual_extra, residual_extra_gate: on frames of large_picture_residual's size, these
    densities too ("": none), but only where the M-frame's J with the densities before them still
    exceeds residual_extra_gate x the I-frame estimate (the GOP's first I-frame's J): a denser set
    costs seconds at 1080p and pays mostly where it keeps a frame from becoming an I-frame.
    picture_residual_extra: these extra densities, behind the same gate, on frames below that
    size (after picture_residual's): where an M-frame is about to lose to an I-frame in a clip
    with no cut (high-motion stretches, high qualities), a denser residual set may keep it. Preset
    medium has no large size, so it takes these at every size (at 1080p one splat per 100 pixels
    is a 20,000-splat fit, run only where an I-frame looms).
    residual_extra_after_prune: the gate compares J once the densities before the extra ones are
    fitted and pruned (off: as fitted, before pruning), so that the extra densities run only
    where the pruned M-frame still loses.
    residual_prune: the residual set of least J is also tried without its least useful splats, at
    counts falling by a fifth while J falls (Encoder._pruned_residual).
    field_coding: how an M-frame's field is coded (frame_coding.FIELD_CODINGS): "best" the shorter
    of the neighbour residuals (format 6.0, kinds 2-4) and zero flags (kind 5); "neighbour" is the
    ablation (the 6.0 coding only).
    refresh_run: an I-frame where the best inter frame's J, and that of the refresh_run - 1 inter
    frames before it, exceed the mean J per frame since the last I-frame (Encoder._refresh_due): a
    GOP whose P- and M-frames drift ends where ending it lowers the mean J (0: off, an I-frame
    only where it beats the inter frame by itself). Off by the whole-clip ablation (BENCHMARKS.md,
    "a GOP refresh by the mean J"): it pays where P-frames drift (the Kodak pan) and loses where
    the J after a refresh is no lower than before it (foreman).
    model_memory: an M-frame's streams may repeat the entropy models, and its residual the steps,
    of the M-frames before it since the last I-frame (format 10.0, frame_coding.CodingMemory; off:
    every M-frame describes its own, as format 9.0 did).
    field_flag_costs: the M-frame motion search prices a zero residual as kind 5's flag does, from
    the share of zero residuals in the last field searched (off: as the 6.0 coding does).
    flag_bucket_costs: a field searched on the last coded field's grid prices each cell's zero flag
    by its bucket of that field's moving cells (motion_vectors.flag_contexts), from the share of
    zero flags each bucket had in the last field coded so split, as format 13.0 codes it (off: one
    price for every cell, field_flag_costs').
    overlapped_cells: each M-frame field is also tried with overlapped cells (kind 6, blended at the
    cells' borders: moved_picture.overlap_blend) and kept where J is lower (off: the ablation).
    median_search: the block searches of a flagged field price each vector that is not its
    neighbour predictor by its residual from the median predictor, as format 12.0 codes it (cells
    chosen in raster order; off: from the left neighbour, as formats 7.0-11.0 coded it), and so
    does the polish (field_refine_passes: a cell's bits then include its lower and lower-left
    neighbours', whose medians it enters).
    field_refine_passes: checkerboard passes that polish the chosen M-frame field by D + lambda R
    over the whole picture (picture_motion.refine_field: each cell tries its neighbours' vectors
    and a step each way, its right and lower neighbours' residual bits counted); kept where J is
    lower (0: off, the ablation).
    refine_luma_only: the polish of the chosen field (field_refine_passes) moves and weighs the
    luma plane alone (luma is 6/8 of J's distortion), a third of the work of moving all three
    planes; the refined field is still kept only where the whole J is lower. Off: 2.3x faster
    refine_field at 1080p, but street's first 12 frames at Q 27 lost 0.16 dB at the same bytes and
    foreman's whole clip +0.7% BD-rate (BENCHMARKS.md, 2026-12-05).
    field_refine_all: refine every candidate field (each block size, plain and overlapped) before
    the choice among them, not only the chosen one. Off: on the seven whole clips it saved 0.3-7%
    on five and halved the Kodak pan's bits, lost 0.2-0.5% on two, at up to six refinements per
    M-frame (BENCHMARKS.md, "Refining every candidate field"). The pan's half came from its motion
    (8 px a frame) being beyond the search's RADIUS, which a refinement's unit steps reached:
    far_motion finds it directly (pan 16 frames Q 33: 15,392 bytes with far_motion, 15,165 with
    both, 17,324 with this alone; 1.4x the time with both).
    far_motion: M-frame fields are also searched around a search reaching further: on frames up to
    motion.SEARCH_PIXELS, one on the frame downscaled picture_motion.FAR_SCALE times (motion beyond
    RADIUS); on larger ones, one downscaled FAR_SCALE_LARGE times as far as their usual search
    (beyond its RADIUS x scale, 35 px at 1080p). Off: the ablation.
    sharp_filter: each quarter-pixel M-frame field is also searched and tried read through the 8-tap
    filter (format 9.0, moved_picture.SHARP_TAPS) and kept where J is lower (off: the cubic only).
    sharp_max_pixels: the 8-tap filter (sharp_filter) is searched on frames of at most this many
    pixels only (its half and quarter-pixel searches and its candidate fields are a sixth of an
    M-frame's time at 1080p). No limit: without the filter, flower 720p lost 1.9% BD-rate PSNR-YUV
    and 13% VMAF (cockatoo -0.2% / +0.8%, street even at Q 27 and 30; BENCHMARKS.md, 2026-12-05).
    residual_lambda_ratio: residual splats are chosen at lambda x this (they stay in the pictures of
    the M-frames after theirs, as an I-frame's quality stays: ip_lambda_ratio).
    intra_step_groups, intra_step_exponent: the constant-quality I-frame's quantiser steps per group
    (centres, log-scales, shear, colours) are the default steps times these multipliers at Q 30,
    and the multipliers other than the log-scales' follow lambda as (lambda / lambda(30))^exponent:
    the RD-optimal step grows with lambda (sqrt(lambda) at high rate; measured weaker here).
    chroma_match_steps: a subsampled frame's chroma is brought to full size, as the target every
    fit and J compares with, by bilinear and then this many steps that add what the box average
    a decoded picture is written with misses of the source (video.colour.upsample_chroma;
    bilinear alone comes back blurred by [1, 6, 1] / 8 each way; 0: bilinear, the ablation), on
    frames of fewer than chroma_match_below_pixels pixels (larger ones: bilinear).
    min_new_share, min_active: what a P-frame always tries, however few of the last frame's new
    splats and changes paid (shares of the previous splat count): with less, an encode can stay stuck
    trying a handful and coding nothing new while the content moves on.
    """

    # The step search lost 5-14% on three clips (12-frame ablation of BENCHMARKS.md) against the
    # default steps, so it is off.
    # ip_lambda_ratio 0.5 by the whole-clip ablation of 2026-12-03 23:30 (seven clips, same run): with
    # M-frames an I-frame's picture lasts for the whole run after it, and lambda / 2 saved 3.2-22.7%
    # on all seven against lambda (lambda / 4: 0.3-34.1%, more than lambda / 2 on four clips, less on
    # three, and further from x264 medium on all seven; the 12-frame ablation of the P-frame encoder
    # had found lambda best).
    # motion_by_cost off by the whole-clip ablation of 2026-12-03 (seven clips, same run): carrying
    # the field saved 0.2-33% on six clips (+1.1% on the pan, within noise), but choosing it by J
    # instead of a 1 dB warm-start gain lost on five clips (foreman +11%, scenecut +21%).
    # inter_extra_scale 1.0 by the whole-clip ablation of 2026-12-03 (seven clips, same run): up to
    # 40 more P-fit steps saved 1-31% on five clips (foreman 31%) and lost 3% (scenecut) and 16%
    # (the Kodak pan).
    # coarse_steps 1.6 / fine_steps 0.4 by one-frame fits on three large clips (street 1080p,
    # cockatoo and flower 720p; 1.2/0.4 and 1.2/0.25 gave less) and a 4-frame RD run on the same
    # clips (2026-12-03): coarse-to-fine saved 9.3%, 19.0% and 15.9% of the bits (PSNR-YUV). On CIF
    # it won on foreman (+0.2 dB) and lost on mobile (-0.4 dB), so it stays off below 1280x720.
    # large_pixels_per_splat 200: the count model's frame-0 answers on those three clips at Q 27-36
    # were one splat per 74-712 pixels (geometric mean 185), where the old guess was one per 50.
    # motion_from_source on by the whole-clip ablation of 2026-12-03 (seven clips, same run): -1.9% to
    # -15.4% on six clips, +0.4% on the pan. With it, motion_gain_db 0.3 was mixed (pan -11%, foreman
    # +5%) and motion_by_cost lost on four clips, so both stay as they were.
    # motion_smoothing 3 (a more rigid field) was mixed on the same seven clips (scenecut -7.6%, cars +3.4%).
    # p_skip_*: street 1080p, 10 frames: 0.83x CPU, identical file; no CIF clip's file changes.
    # m_skip_ratio 1.5 (3 frames) by the whole-clip run of 2026-12-03 17:11 (seven clips, same run):
    # 2-4x faster encodes where M-frames win (cars, foreman at Q 27-30), -15% bits on the pan and the
    # scene-cut clip, -0.6% foreman, 0 on mobile and vt2people, +3.1% cars, +1.5% cuts_qcif.
    # m_preference stays 1.0: 1.3 lost 5-41% on five clips (won 11% on the pan, 4% on scenecut).
    # coarse_count_probe on by a run of 2026-12-05 (street 1080p 54 frames, cockatoo and flower 720p
    # 24 frames, Q 27-36, same run as the curve without it): BD-rate PSNR-YUV / VMAF +0.04 / -1.28%,
    # -1.47 / +0.14%, +0.38 / -1.63%: no RD change, and a far count costs a coarse stage, not a fit.
    # count_follows_lambda off by the whole-clip ablation of 2026-12-03 (seven clips, same run):
    # pruning or adding splats in the fine-tune lost on every clip against keeping the fitted count.
    ip_lambda_ratio: float = 0.5
    cost_ip: bool = True
    rd_changes: bool = True
    rd_new: bool = True
    step_search: bool = False
    local_motion: bool = True
    p_preference: float = 1.3
    min_new_share: float = 0.02
    min_active: float = 0.1
    inter_steps_scale: float = 1.0
    inter_extra_scale: float = 1.0
    motion_field: bool = True
    motion_by_cost: bool = False
    motion_gain_db: float = 1.0
    motion_from_source: bool = True
    motion_smoothing: int = 1
    coarse_steps: float = 1.6
    fine_steps: float = 0.4
    large_pixels_per_splat: float = 200.0
    p_skip_losses: int = 2
    p_skip_frames: int = 3
    p_clear_loss: float = 1.5
    count_follows_lambda: bool = False
    coarse_count_probe: bool = True
    picture_frames: bool = True
    picture_rd_search: bool = True
    picture_quarter: bool = True
    picture_cells: str = "8,16,32"
    # cell_memory 8 (with m_skip_backoff 24) lost on the 24-frame large-clip run of 2026-12-04:
    # cockatoo +1.7% BD-rate (7 I-frames at Q 33, not 5: the M-frames it searched fewer block
    # sizes for cost more than J allowed), street +3.2% bits at Q 27; at every size, foreman
    # +1.6%, the pan -0.6%. Off.
    cell_memory: int = 0
    quarter_neighbours: bool = False
    m_copy_weight: float = 0.0
    # picture_residual 2000,700,250 with residual_prune by the whole-clip run of 2026-12-04 (seven
    # clips, same run; BENCHMARKS.md "Pruned residual sets"): the third density alone saved 1-19% on
    # six clips but jumped between counts (--bpp could not land on a 3-frame crop); pruned, the
    # count moves by fifths and both together saved 7-23% (cut_by_picture included on cuts_qcif).
    # cut_by_picture: cuts_qcif -10.7% alone, scenecut (whose cut was an I-frame already) 0.0%.
    picture_residual: str = "2000,700,250"
    # large_picture_residual 2000 with large_residual_steps 60 by the 24-frame large-clip run of
    # 2026-12-05 (street 1080p, cockatoo and flower 720p, same run; BENCHMARKS.md "Residual splats
    # at 1280x720 and up in preset fast"): -17.8%, -26.2% and -1.7% bits against none (fewer
    # I-frames: the M-frames hold their quality), 1.12x the time on street's 54 frames at Q 27.
    # 2000,700 saved more (-28.3%, -29.4%, -2.7%) at 1.6-2x the time on street; a 6-iteration last
    # refit (large_residual_refit) measured the same on the mean for 0.96x the time.
    # Fitted 120 steps at half size and 18 at full size with 2-iteration inner and 6-iteration last
    # colour refits (large_residual_coarse 2.0, fine 0.3, inner_refit 2, refit 6) by the run of
    # 2026-12-05 16:42-17:10 UTC (same three clips, first 24 frames, same run; BENCHMARKS.md "A
    # cheaper residual fit at 1280x720 and up"): BD-rate +0.4%, +1.9%, -0.4% against 96 + 24 steps
    # with 6 and 25 iterations, a residual fit in 0.65x the time. 120 + 12 steps lost 3.9% on
    # cockatoo and an I-frame more on street at Q 33.
    # large_picture_residual 2000,700 with large_residual_coarse_factor 4 (the coarse stage on the
    # frame averaged over 4 x 4 blocks) by the 24-frame run of 2026-12-05 22:13-00:05 UTC (street
    # 1080p, cockatoo and flower 720p, same run; BENCHMARKS.md "Median-priced field searches, and
    # denser residual splats at 1280x720 and up"): BD-rate PSNR-YUV -8.5%, -6.0%, -0.8% against
    # 2000 at half size (fewer I-frames at Q 33-36: the M-frames hold their quality), 1.12x the
    # time on street's first 12 frames at Q 27 (one thread, idle). Factor 4 alone: an extra I-frame
    # on street at Q 33.
    # large_picture_residual 700 alone by the 24-frame run of 2026-12-06 05:00-05:45 UTC (same three
    # clips, same run; BENCHMARKS.md "One residual density at 1280x720 and up"): the 700 set pruned
    # had a J at or below 2000,700's on every M-frame probed (30 frames of street and cockatoo:
    # only the set of least J as fitted was pruned, and that was often the 2000 set), BD-rate
    # PSNR-YUV -0.2%, -3.9%, -2.2% against 2000,700 (same run), one fit instead of two: 0.85-0.89x
    # the time on street's first 12 frames (one thread, idle).
    large_picture_residual: str = "700"
    large_residual_steps: int = 60
    large_residual_refit: int = 6
    large_residual_coarse: float = 2.0
    large_residual_fine: float = 0.3
    large_residual_inner_refit: int = 2
    large_residual_coarse_factor: int = 4
    large_residual_fine_factor: int = 1
    residual_prune: bool = True
    # large_residual_extra off by the 24-frame run of 2026-12-06 01:20-03:30 UTC (street 1080p,
    # cockatoo and flower 720p, Q 27-36, same run as main; BENCHMARKS.md "A third residual density
    # near I-frames"): 300 past gate 0.6 gave street -6.5% BD-rate PSNR-YUV (an I-frame fewer at
    # Q 33 and at Q 36; +144% against x264 medium, main +159%), cockatoo -0.2%, flower the same
    # bytes, but 1.17x the time at Q 27 (the same bytes there) and 1.20x at Q 33 on street's first
    # 12 frames (one thread, idle): the gate fires on frames where the third density then loses.
    # On every M-frame (no gate) the same bytes as with it.
    # large_residual_extra 300 past gate 1.0 by the 24-frame runs of 2026-12-06 07:00-09:10 UTC on
    # top of 700 alone (street 1080p, cockatoo and flower 720p, same runs; BENCHMARKS.md "Flags
    # split by the last field, and a denser residual set only where an I-frame looms"): street
    # -3.8% BD-rate PSNR-YUV (an I-frame fewer at Q 33 and at Q 36), cockatoo -0.3%, flower the
    # same bytes; but with the gate on J as fitted, 1.47x the time on street's first 24 frames at
    # Q 36 (fitting the 300 set where pruning then kept the M-frame anyway). residual_extra_after_prune:
    # the gate on the pruned J, street -0.3% and cockatoo +0.1% against that (format 13.0 both).
    large_residual_extra: str = "300"
    # picture_residual_extra 100 by the whole-clip run of 2026-12-06 12:50-15:05 UTC (preset fast,
    # Q 27-36, against the curves of the defaults before, whose points were reused: the same
    # encoder byte for byte; BENCHMARKS.md "A denser residual set where an I-frame looms, below
    # 1280x720 too"): vt2people -1.8% BD-rate PSNR-YUV (Q 36 -22.7% bytes at -0.21 dB: no I-frame
    # at frame 7), cuts_qcif -4.2% (Q 33 -5.4% bytes at +0.04 dB, Q 36 -28.8% at -0.16 dB: the
    # dance scene's P-frames become M-frames), cars, foreman, mobile the same bytes at all four
    # points (the gate never fired); 60 on vt2people Q 36 gave about the same as 100.
    picture_residual_extra: str = "100"
    residual_extra_gate: float = 1.0
    residual_extra_after_prune: bool = True
    cut_by_picture: bool = True
    # residual_lambda_ratio 0.5 and intra_step_groups 2,1,2,2 with exponent 0.25 were measured on
    # the seven whole clips (BENCHMARKS.md, "Quantiser steps and residual lambda"): each gained on
    # some clips and lost on others (-6% to +5%), so both stay off.
    residual_lambda_ratio: float = 1.0
    field_coding: str = "best"
    refresh_run: int = 0
    model_memory: bool = True
    field_flag_costs: bool = True
    flag_bucket_costs: bool = True
    overlapped_cells: bool = True
    # field_refine_passes 3 by the whole-clip run of 2026-12-05 (seven clips, same run; BENCHMARKS.md
    # "Native loss sums"): -1.8% to +0.4% BD-rate (four clips gain, three lose) for +10% encode time
    # at 1080p (street, 12 frames: -1.4% bytes, +0.03 dB; 1 pass +3.9% bytes, -0.14 dB). Stays 2.
    field_refine_passes: int = 2
    # median_search on by the whole-clip run of 2026-12-05 22:13-23:41 UTC (five clips, the same run
    # as format 12.0 with the search and the polish priced by left residuals; BENCHMARKS.md "Median-
    # priced field searches"): BD-rate PSNR-YUV foreman -5.5%, cars -5.8%, mobile -3.0%, vt2people
    # -2.4%, cuts_qcif -1.5%; street 1080p (24 frames, Q 27 and 30) -4.7%, but at Q 33 a third
    # I-frame (+19% bytes, +0.15 dB). The search alone, the polish still on left residuals: cars
    # -3.0%, vt2people -0.1%.
    median_search: bool = True
    field_refine_all: bool = False
    refine_luma_only: bool = False
    far_motion: bool = True
    sharp_filter: bool = True
    sharp_max_pixels: int = 1 << 62
    m_preference: float = 1.0
    real_intra_after_m: bool = True
    # intra_trial_steps 300 by 41 real I-fit trials on seven clips (2026-12-05, BENCHMARKS.md "A
    # short fit before each real I-fit trial"): the full fit's J was 0.74-0.87 of the short fit's,
    # and the 40 trials that lost did so with J(P) / (p_preference J(I)) at 0.49-0.77.
    intra_trial_steps: int = 300
    # large_trial_bound 0.95 by the trials of that run (a real I-fit's J over the last one's: 0.95-1.05
    # on street, 0.81-1.27 on cockatoo; the one trial that won had an M-frame at 1.017 of it, the lost
    # ones 0.49-0.94). Every trial (0) and a bound of 0.75 on the GOP's estimate coded the same bits
    # on cockatoo and flower; 0.95 on the last fit the same as 0.75 on street and flower, cockatoo
    # -0.4% BD-rate, and it skips street's run of lost trials at Q 36 (30 s each at 1080p).
    large_trial_bound: float = 0.95
    # real_intra_vs_m off (2026-12-05, BENCHMARKS.md "A short fit before each real I-fit trial"):
    # street Q 27 +1.0% bytes for -0.11 dB (the I-frame it turned into an M-frame renewed the
    # picture the later M-frames move); no change on the twelve small-clip points where it can act.
    real_intra_vs_m: bool = False
    m_skip_ratio: float = 1.5
    m_skip_frames: int = 3
    # m_skip_backoff 24 by 24-frame encodes of the three large clips (2026-12-04, BENCHMARKS.md
    # "Longer I-fits in preset fast"): street Q 27, cockatoo and flower Q 30 gave the same bytes
    # with and without it (no P-frame won there) and flower took 0.885x the time.
    m_skip_backoff: int = 24
    m_skip_over_intra: bool = True
    # warm_count_refit off (2026-12-05, BENCHMARKS.md "Native loss sums"): street 1080p Q 27, one
    # thread: frame 0's second fit in 0.49x the time, but the clip +2.3% bytes for -0.07 dB.
    warm_count_refit: bool = False
    intra_steps_scale: float = 1.0
    # intra_lr_scale 2 and intra_anneal_steps 200 with 2400 steps by the whole-clip run of
    # 2026-12-05 (seven clips, same run; BENCHMARKS.md "I-fits at twice the learning rate"):
    # -4.2% to -9.7% BD-rate against 1200 steps at the old rates; 2400 steps alone gave -3.3% to
    # -7.9%. One-frame fits first (frame 0 of five clips, 1200 steps): rates x2 +0.2-0.3 dB,
    # the decay on the plateau +0.1-0.2 dB more (on vt2people x3 or x4 gave less, and colours or
    # means alone a part of it).
    # At 1080p (coarse to fine) rates x2 were about neutral (street, 24 frames, Q 27: +0.8% bytes
    # for +0.06 dB), so large frames keep theirs.
    intra_lr_scale: float = 2.0
    intra_anneal_steps: int = 200
    intra_step_groups: str = "1,1,1,1"
    intra_step_exponent: float = 0.0
    # chroma_match_steps 1 by the whole-clip run of 2026-12-06 15:43-17:40 UTC (preset fast, Q 27-36,
    # the same run as 0 and 2; BENCHMARKS.md "A chroma target that the decoder's box average gives
    # back"): BD-rate PSNR-YUV mobile -6.3%, the Kodak pan -4.1%, scenecut -3.8%, vt2people -2.4%,
    # cuts_qcif -2.2%, cars -2.0%, foreman -0.4% (VMAF -3.1% to +2.6%); two steps -0.9% to -6.2%
    # (more than one step on foreman alone). chroma_match_below_pixels 1280x720 by the same run's
    # first 24 frames of street 1080p, cockatoo and flower 720p: +0.5%, +0.2%, +1.4% with one step
    # (their chroma is smooth at that size: bilinear box-averaged loses only 60-68 dB there, 43-60
    # dB on the small clips).
    chroma_match_steps: int = 1
    chroma_match_below_pixels: int = 1280 * 720


def lagrangian(quality: float) -> float:
    """lambda (weighted squared error per bit) of quality Q: 2 ln2 * 10^(-Q/10)."""
    return 2.0 * LN2 * 10.0 ** (-quality / 10.0)


STEP_REFERENCE_QUALITY = 30.0
"""The quality at which RDTuning.intra_step_groups holds as given."""


def intra_base_steps(tuning: RDTuning, lam: float) -> QuantSteps:
    """The I-frame's base quantiser steps at lambda `lam` (RDTuning.intra_step_groups)."""
    mean, log_scale, shear, color = (float(v) for v in tuning.intra_step_groups.split(","))
    follow = (lam / lagrangian(STEP_REFERENCE_QUALITY)) ** tuning.intra_step_exponent
    d = QuantSteps.default()
    return QuantSteps(d.mean * mean * follow, d.log_scale * log_scale, d.shear * shear * follow,
                      tuple(c * color * follow for c in d.color))  # type: ignore[arg-type]


def weighted_sse(rendered: torch.Tensor, image: torch.Tensor, weights: torch.Tensor) -> float:
    """Sum over pixels of the channel-weighted squared error (weights sum to 1), clamped render.
    Every J of the encoder pays one (an M-frame's ~20 candidates each a whole frame): on the CPU
    in one native pass with double sums (loss.clamped_error_sums), else torch's expression."""
    sums = clamped_error_sums(rendered, image)
    if sums is not None:
        return float(sum(w * s for w, s in zip(weights.tolist(), sums, strict=True)))
    err = (rendered.clamp(0, 1) - image) ** 2
    return float((err.sum(dim=(1, 2)) * weights).sum())


def gaussian_overlap(a: Splats, b: Splats) -> torch.Tensor:
    """Integral over the plane of w_a(p) w_b(p) for row-paired splats a[i], b[i], [N] (pixel units).

    2 pi sqrt(det Sa det Sb / det(Sa + Sb)) exp(-d^T (Sa + Sb)^-1 d / 2), d = mean_a - mean_b;
    for a == b it equals splat_energy (pi sqrt(det S)).
    """
    def cov(chol: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        l1, l2, l3 = chol.unbind(1)
        return l1 * l1, l1 * l2, l2 * l2 + l3 * l3

    axx, axy, ayy = cov(a.chol)
    bxx, bxy, byy = cov(b.chol)
    sxx, sxy, syy = axx + bxx, axy + bxy, ayy + byy
    det_s = (sxx * syy - sxy * sxy).clamp(min=1e-12)
    det_a = (a.chol[:, 0] * a.chol[:, 2]).abs()  # sqrt(det Sa) = |l1 l3|
    det_b = (b.chol[:, 0] * b.chol[:, 2]).abs()
    d = a.means - b.means
    quad = (syy * d[:, 0] ** 2 - 2 * sxy * d[:, 0] * d[:, 1] + sxx * d[:, 1] ** 2) / det_s
    return 2 * math.pi * det_a * det_b / det_s.sqrt() * torch.exp(-0.5 * quad)


def replacement_cost(new: Splats, old: Splats, wt_residual_new: torch.Tensor, wt_residual_old: torch.Tensor,
                     weights: torch.Tensor) -> torch.Tensor:
    """Weighted SSE change if each splat `new[i]` were put back to `old[i]`, [N] (negative: the old
    one was better). wt_residual_* [N,3]: W^T r of each version against the same residual r."""
    e_new = splat_energy(new.chol).unsqueeze(1)
    e_old = splat_energy(old.chol).unsqueeze(1)
    cross = gaussian_overlap(new, old).unsqueeze(1)
    linear = 2 * (old.colors * wt_residual_old - new.colors * wt_residual_new)
    square = old.colors ** 2 * e_old + new.colors ** 2 * e_new - 2 * old.colors * new.colors * cross
    return ((linear + square) * weights).sum(1)


def residual_products(splats: Splats, residual: torch.Tensor) -> torch.Tensor:
    """W^T r [N,3] of `splats` against an image-shaped residual r [3,H,W]."""
    return apply_wt(splats.means, splats.chol, residual, residual.shape[1], residual.shape[2])


def symbol_bits(values: np.ndarray) -> np.ndarray:
    """Per-symbol code length estimate (bits) of an integer stream from its own histogram:
    -log2(count(v) / n) for every entry (what an adaptive model would approach)."""
    if len(values) == 0:
        return np.zeros(0)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return -np.log2(counts[inverse] / len(values))


GROUP_COLUMNS = ((0, 2), (2, 5), (5, 8))
"""Columns of the [N, 8] integer layout per parameter group (means, chol, colours): the change class
of a P-frame survivor has one bit per group (frame_coding)."""


def change_bits(deltas: np.ndarray, n_survivors: int) -> np.ndarray:
    """Bits each changed survivor costs over an unchanged one, [n_changed], estimated from this
    frame's own statistics: its coded delta columns (every column of a group that changed) plus
    its change class over class 0. deltas [n_changed, 8] integer differences (some row non-zero)."""
    moved_groups = np.stack([(deltas[:, a:b] != 0).any(axis=1) for a, b in GROUP_COLUMNS], axis=1)
    bits = np.zeros(len(deltas))
    for g, (a, b) in enumerate(GROUP_COLUMNS):
        rows = moved_groups[:, g]
        for column in range(a, b):
            bits[rows] += symbol_bits(deltas[rows, column])
    classes = moved_groups @ np.array([1, 2, 4])
    unchanged = n_survivors - len(deltas)
    all_classes = np.concatenate([classes, np.zeros(unchanged, dtype=classes.dtype)])
    class_bits = symbol_bits(all_classes)
    zero_bits = class_bits[-1] if unchanged else math.log2(n_survivors + 1)
    return bits + class_bits[: len(deltas)] - zero_bits

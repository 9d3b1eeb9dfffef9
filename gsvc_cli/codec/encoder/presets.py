"""Encoder presets (--preset fast|medium|slow, as x264's) and the fitting loop's knobs: one table.

Torch-free, so the CLI can list the preset names (and say the cut margin) without loading the codec.
"""

from __future__ import annotations

from dataclasses import dataclass

from gsvc_cli.errors import UsageError

CUT_MARGIN_DB = 3.0
"""A frame is a cut when its best moved picture is less than this many dB (YUV 6:1:1) better than
its own 40x40 block means (Encoder._moved_picture_is_cut). In encodes at Q 27 (the previous decoded
picture moved): cuts_qcif's five cuts at -6.5 to +0.95 dB, every other frame of cuts_qcif, mobile
and vt2people at +7.1 dB or more. Between source frames (fields at 16 px, far motion): the six
real cuts of cuts_qcif and scenecut at -7.7 to -1.7 dB; no other frame of those, cars, mobile,
vt2people, the pan, foreman (60 and 300 frames) or chaplin below +6.7 dB; airplane's fade to
black at its end (frames 273-279) below 0."""


@dataclass(frozen=True)
class FitConfig:
    """Knobs of the frame fitter (fitting.fit_frame). Learning rates are per step: means in pixels,
    chol relative to the typical splat spacing, colours in image units."""

    max_steps: int = 600
    min_steps: int = 40  # never stop early before this
    # Learning rates (Adam; cosine decay to lr * lr_final_fraction over max_steps).
    lr_means: float = 0.25
    lr_chol: float = 0.04
    lr_colors: float = 0.01
    lr_final_fraction: float = 0.05
    # Early stopping: stop when the PSNR gain over the last stop_window steps, per step, is below this.
    stop_gain_db: float = 2e-3
    stop_window: int = 40
    # On that plateau, decay the learning rates to lr * lr_final_fraction over this many more steps
    # before stopping (the annealing the cosine would have done by max_steps). 0: stop at once.
    anneal_steps: int = 0
    # Closed-form colour refits (every refit_every steps, after each densification and at the end).
    refit_every: int = 100
    refit_iters: int = 6
    final_refit_iters: int = 25
    # Densification / pruning: every densify_every steps while step < densify_until * max_steps,
    # swap swap_fraction of the splats (prune the least useful, add at the largest residual).
    densify_every: int = 50
    densify_until: float = 0.6
    swap_fraction: float = 0.05
    # Warm start: splats to add at the start, as a fraction of len(init) (None: only what the count
    # needs); the same number of least useful splats is pruned to keep the count.
    add_fraction: float | None = None
    # Initial placement.
    init_uniform_mix: float = 0.3
    init_size_scale: float = 0.6
    min_sigma: float = 0.35  # pixels; Cholesky diagonal floor so no splat collapses
    # Coarse-to-fine (fits from scratch, without a parameter transform, of frames of at least
    # coarse_min_pixels): coarse_steps x max_steps steps fit the frame downscaled 2x (a quarter of
    # the pixels, each splat a quarter of the tiles: a step costs about a third), then the splats are
    # scaled up and fine_steps x max_steps steps refine them at full size. 0: off.
    coarse_steps: float = 0.0
    fine_steps: float = 0.4
    coarse_min_pixels: int = 1280 * 720
    coarse_factor: int = 2  # the coarse stage's frame is averaged over blocks of this many pixels square
    # The fine stage too on the frame averaged over blocks of this many pixels square (a multiple
    # of coarse_factor's divisor; 1: at full size); only the colours are then refitted at full
    # size (final_refit_iters). For splats many pixels wide (the residual splats of M-frames),
    # whose shapes a downscaled frame still shows, at a quarter of a full-size step's cost.
    fine_factor: int = 1
    history_points: int = 60
    time_limit: float | None = None  # seconds; stop after this much wall time (benchmarks, budgets)


@dataclass(frozen=True)
class Preset:
    """One speed/quality point of the encoder.

    intra: the I-frame fit from scratch. fine_tune: the quantisation-aware fine-tune of an I-frame at
    its chosen quantiser steps (a short warm-started fit with small learning rates). inter_steps:
    iterations of a P-frame fit (inter_fit.fit_inter, whose learning rates are INTER_LRS).
    residual_max_pixels: M-frames of frames with fewer pixels may add residual splats by
    RDTuning.picture_residual (three small fits per M-frame: ~20 s at 1080p), larger ones by
    RDTuning.large_picture_residual and the large_residual_* fit knobs. small_intra_steps: intra's
    max_steps for frames below its coarse_min_pixels, which are fitted at full size only.
    """

    name: str
    intra: FitConfig
    fine_tune: FitConfig
    inter_steps: int
    residual_max_pixels: int
    small_intra_steps: int


INTER_LRS = (0.1, 0.02, 0.005)
"""P-frame learning rates (means px, chol px, colours) of inter_fit.fit_inter, every preset."""


ALL_SIZES = 1 << 62


def _preset(name: str, intra_steps: int, inter_steps: int, residual_max_pixels: int,
            small_intra_steps: int | None = None) -> Preset:
    tune_steps = max(30, max(60, intra_steps // 5) // 2)
    fine_tune = FitConfig(max_steps=tune_steps, min_steps=20, lr_means=0.05, lr_chol=0.005,
                          lr_colors=0.004, densify_until=0.0, stop_window=20, refit_every=50)
    return Preset(name, FitConfig(max_steps=intra_steps), fine_tune, inter_steps, residual_max_pixels,
                  small_intra_steps or intra_steps)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    # Residual splats at 1080p (street, 12 frames, Q 27): +26% bytes for +2.0 dB, 2.9x the encode
    # time (BENCHMARKS.md): on in medium and slow, below 1280x720 in fast.
    # fast's I-fits below 1280x720 (no coarse stage) take 2400 steps: the I-frame's picture is what
    # every M-frame after it moves. On seven whole clips 600 steps saved 5.5-12.7% of the bits
    # against 250, 1200 another 3-4% (BENCHMARKS.md "Longer I-fits in preset fast"), and 2400 at
    # twice the learning rates with a decay on the plateau (RDTuning.intra_lr_scale,
    # intra_anneal_steps) 4.2-9.7% more ("I-fits at twice the learning rate"). Medium takes as
    # many and slow more (their own whole-clip RD with them not re-measured): no slower preset
    # fits less.
    _preset("fast", 250, 40, 1280 * 720, small_intra_steps=2400),
    _preset("medium", 600, 80, ALL_SIZES, small_intra_steps=2400),
    _preset("slow", 1500, 160, ALL_SIZES, small_intra_steps=3000),
)}
PRESET_NAMES = tuple(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called `name`; a clear usage error for any other name."""
    if name not in PRESETS:
        raise UsageError(f"--preset {name!r}: choose one of {', '.join(PRESET_NAMES)}")
    return PRESETS[name]

"""Rate control: how many splats, how many new splats and how many bits each frame may spend.

Three ways to ask for a result, as in x264's --bitrate / --crf / --qp:
- `bpp`: file bits / (W x H x frames), header, records and index included. A bit budget is spread
  over GOPs in proportion to their length; inside a GOP the I-frame gets the share that, with the
  measured P/I cost ratio, leaves its P-frames what they need. Estimates (bits per intra splat,
  the P/I ratio) are learned from the frames already coded, so later GOPs correct earlier errors.
- `psnr`: every frame is fitted until it reaches the target PSNR (plus a margin for quantisation).
- `splats`: a fixed splat count per frame, default quantiser steps.

When the length is unknown (a Y4M pipe), `frames` is None and the bpp budget is planned as the
video goes, at the target bits per frame: an I-frame plans its GOP over a short horizon
(OPEN_HORIZON frames, or --gop if shorter), and a GOP that outlives its horizon doubles it (up to
--gop), adding those frames' bits; what was over- or under-spent so far is carried along. So the
target is met whenever the stream ends on a horizon, and a stream that ends elsewhere misses it
by at most part of one I-frame's extra share (the short first horizon keeps that small).

The controller never fits anything itself: the encoder asks it for a plan before each frame and
tells it what the frame really cost afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gsvc_cli.codec.bitstream.frame_coding import CodedFrame, encode_inter_frame, encode_intra_frame
from gsvc_cli.codec.bitstream.quantise import QuantisedSplats, QuantSteps, quantise
from gsvc_cli.codec.splats import Splats
from gsvc_cli.errors import UsageError

if TYPE_CHECKING:
    from gsvc_cli.codec.encoder.inter_fit import InterResult

MIN_SPLATS = 16
BPP_TOLERANCE = 0.01  # --bpp lands within 1% of the target on the whole file
BPP_SEARCH_PASSES = 5  # constant-quality passes of a --bpp search
BPP_STEER_PASSES = 2  # steered passes after them, when no constant-quality pass landed
STEER_RANGE = 6.0  # a steered pass keeps every frame's quality within this of its reference's
DB_PER_RATE_DOUBLING = 4.0  # quality steps per doubling of the rate (first guess only): 3.3-6.1 on the
# seven whole clips of BENCHMARKS.md between Q 27 and 36, median ~4
BPP_AT_Q33 = 0.43  # the same clips at Q 33, preset fast: 0.18-1.29 bpp, geometric mean ~0.43
MAX_BPP = 24.0  # more than raw 8-bit 4:4:4: nobody asks for it on purpose
STEP_SEARCH_ITERS = 9
STEP_SCALE_RANGE = (2.0 ** -3, 2.0 ** 4)


@dataclass(frozen=True)
class RateTarget:
    """Exactly one of quality (the constant-quality scale of rd.lagrangian, higher is better), bpp,
    psnr (dB, YUV 6:1:1 of the decoded frames) or splats (count per frame)."""

    bpp: float | None = None
    psnr: float | None = None
    splats: int | None = None
    quality: float | None = None

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.bpp, self.psnr, self.splats, self.quality)]
        if sum(given) != 1:
            raise UsageError("give exactly one of --quality, --bpp, --psnr or --splats")
        if self.quality is not None and not (0 <= self.quality <= 70 and math.isfinite(self.quality)):
            raise UsageError(f"--quality {self.quality}: must be between 0 and 70")
        if self.bpp is not None and not (0 < self.bpp <= MAX_BPP and math.isfinite(self.bpp)):
            raise UsageError(f"--bpp {self.bpp}: must be above 0 and at most {MAX_BPP}")
        if self.psnr is not None and not (10 <= self.psnr <= 80):
            raise UsageError(f"--psnr {self.psnr}: must be between 10 and 80 dB")
        if self.splats is not None and self.splats < 1:
            raise UsageError(f"--splats {self.splats}: must be at least 1")

    def describe(self) -> str:
        if self.quality is not None:
            return f"quality={self.quality:g}"
        if self.bpp is not None:
            return f"bpp={self.bpp:g}"
        if self.psnr is not None:
            return f"psnr={self.psnr:g}"
        return f"splats={self.splats}"


@dataclass(frozen=True)
class FramePlan:
    """What the encoder should aim for in one frame.

    count: splats after the frame is fitted. add: new splats in a P-frame (placed at the residual).
    active: fraction of a P-frame's surviving splats allowed to change.
    bits: the frame's bit target (None: no target, code as the quantiser gives).
    """

    count: int
    add: int
    bits: float | None
    active: float = 0.0


class RateController:
    """Plans frames for a RateTarget over a video of known size and length.

    overhead_bytes: header, index, trailer and per-record bytes of the whole file, known up front.
    frames None: length unknown (see the module docstring); entry_bytes is then what each frame
    adds to the index, charged as the plan grows.
    """

    # Starting guesses, replaced by measurements as soon as frames are coded.
    INITIAL_BITS_PER_SPLAT = 40.0
    INITIAL_P_RATIO = 0.3
    INITIAL_DELTA_BITS = 24.0  # bits of a survivor that changes
    INITIAL_STRUCTURE_BITS = 1.0  # bits per survivor for deletion flags and change classes
    DEFAULT_ADD_FRACTION = 0.05
    DEFAULT_ACTIVE_FRACTION = 0.3
    MAX_ADD_FRACTION = 0.2
    ADD_SHARE = 0.05  # of a P-frame's bits, at most, for new splats (swept: 0.05 beat 0.35 by 0.5-0.8 dB)
    OPEN_HORIZON = 8  # frames an I-frame plans for when the length is unknown (doubled as needed)

    def __init__(self, target: RateTarget, width: int, height: int, frames: int | None, gop: int,
                 overhead_bytes: int, entry_bytes: int = 0) -> None:
        self.target = target
        self.pixels = width * height
        self.gop = max(1, gop)
        self.open_ended = frames is None
        self.overhead_bytes, self.entry_bytes = overhead_bytes, entry_bytes
        if frames is None:  # plan one GOP for now; plan_intra extends it
            frames = self.gop
            overhead_bytes += entry_bytes * frames
        self.frames = max(1, frames)
        self.max_splats = max(MIN_SPLATS, self.pixels // 2)
        self.total_bits = (target.bpp * self.pixels * self.frames - 8 * overhead_bytes
                           if target.bpp is not None else None)
        if self.total_bits is not None and self.total_bits < 8 * 64:
            raise UsageError(
                f"--bpp {target.bpp:g} leaves no room for frames after the file's own overhead "
                f"({overhead_bytes} bytes); ask for more bits")
        self.bits_per_splat = self.INITIAL_BITS_PER_SPLAT
        self.p_ratio = self.INITIAL_P_RATIO
        self.used_bits = 0.0
        self.done = 0
        self.gop_bits = 0.0  # budget of the current GOP
        self.gop_used = 0.0
        self.gop_frames = 1
        self.gop_done = 0
        self.i_bits = 1.0
        self._p_ratios: list[float] = []
        self.delta_bits = self.INITIAL_DELTA_BITS
        self.structure_bits = self.INITIAL_STRUCTURE_BITS

    # ------------------------------------------------------------------------------------------
    def plan_intra(self) -> FramePlan:
        """Plan an I-frame, which opens a GOP of up to `gop` frames."""
        if self.open_ended:  # length unknown: assume the video runs on for a short horizon
            self._plan_until(self.done + min(self.gop, self.OPEN_HORIZON))
        left = self.frames - self.done
        self.gop_frames = min(self.gop, left)
        self.gop_done = 0
        self.gop_used = 0.0
        if self.target.splats is not None:
            return FramePlan(self.target.splats, 0, None)
        if self.total_bits is None:  # PSNR target: the fitter grows the count
            return FramePlan(self.max_splats, 0, None)
        remaining = max(self.total_bits - self.used_bits, 8.0 * 64)
        self.gop_bits = remaining * self.gop_frames / left
        share = 1.0 / (1.0 + (self.gop_frames - 1) * self.p_ratio)
        bits = self.gop_bits * share
        count = int(min(self.max_splats, max(MIN_SPLATS, bits / self.bits_per_splat)))
        return FramePlan(count, 0, bits)

    def plan_inter(self, n_prev: int) -> FramePlan:
        """Plan a P-frame that starts from the previous frame's `n_prev` splats."""
        if self.total_bits is None:
            add = max(1, round(self.DEFAULT_ADD_FRACTION * n_prev))
            count = self.target.splats if self.target.splats is not None else n_prev
            return FramePlan(count, add, None, self.DEFAULT_ACTIVE_FRACTION)
        if self.open_ended and self.gop_done >= self.gop_frames and self.gop_frames < self.gop:
            # length unknown and the GOP outlived its horizon: double it, with those frames' bits
            extra = min(self.gop - self.gop_frames, self.gop_frames)
            before = self.total_bits
            self._plan_until(self.frames + extra)
            self.gop_bits += self.total_bits - before
            self.gop_frames += extra
        frames_left = max(1, self.gop_frames - self.gop_done)
        bits = max(0.0, (self.gop_bits - self.gop_used) / frames_left)
        spend = max(0.0, bits - self.structure_bits * n_prev)
        # New splats are intra-coded and dear: they get a share; changed survivors get the rest.
        add = int(min(self.MAX_ADD_FRACTION * n_prev, self.ADD_SHARE * spend / self.bits_per_splat))
        left = spend - add * self.bits_per_splat
        active = min(1.0, max(0.0, left / self.delta_bits / max(1, n_prev)))
        return FramePlan(n_prev, max(0, add), bits, active)

    def _plan_until(self, frames: int) -> None:
        """Length unknown: plan for `frames` frames in all (the bit budget grows with them)."""
        self.frames = frames
        if self.target.bpp is not None:
            self.total_bits = (self.target.bpp * self.pixels * frames
                               - 8 * (self.overhead_bytes + self.entry_bytes * frames))

    def learn_inter(self, payload_bits: float, n_prev: int, n_new: int, n_changed: int) -> None:
        """Refine the P-frame cost model from a coded P-frame's figures."""
        rest = payload_bits - n_new * self.bits_per_splat - self.structure_bits * n_prev
        if n_changed > 0 and rest > 0:
            self.delta_bits = 0.5 * self.delta_bits + 0.5 * max(4.0, rest / n_changed)

    # ------------------------------------------------------------------------------------------
    def record(self, frame_type: str, bits: float, n_splats: int, intra_bits_per_splat: float | None = None
               ) -> None:
        """Tell the controller what a frame really cost (payload and record bits)."""
        self.used_bits += bits
        self.done += 1
        self.gop_used += bits
        self.gop_done += 1
        if frame_type == "I":
            self.i_bits = max(bits, 1.0)
            if n_splats:
                self.bits_per_splat = bits / n_splats
        else:
            self._p_ratios.append(bits / self.i_bits)
            recent = self._p_ratios[-8:]
            self.p_ratio = min(1.0, max(0.02, sum(recent) / len(recent)))
        if intra_bits_per_splat:
            self.bits_per_splat = 0.5 * self.bits_per_splat + 0.5 * intra_bits_per_splat


# ----------------------------------------------------------------------------------------------
# --bpp as a search over the quality scale


def first_quality(bpp: float) -> float:
    """A first guess of the quality that gives `bpp` (CIF-sized clips at preset fast land near it)."""
    return min(70.0, max(0.0, 33.0 + DB_PER_RATE_DOUBLING * math.log2(bpp / BPP_AT_Q33)))


def next_quality(tried: dict[float, float], target_bpp: float) -> float | None:
    """The next quality to try given {quality: bpp} so far, or None when one already lands within
    BPP_TOLERANCE. Bisection-safe secant in (quality, log bpp): between the closest pair that
    brackets the target when there is one, else a step along the measured (or the typical) slope."""
    if any(abs(b / target_bpp - 1.0) <= BPP_TOLERANCE for b in tried.values()):
        return None
    points = sorted(tried.items())
    below = [(q, b) for q, b in points if b < target_bpp]
    above = [(q, b) for q, b in points if b > target_bpp]
    if below and above:
        (q0, b0), (q1, b1) = max(below), min(above)  # rate rises with quality
        if q1 <= q0:  # not monotonic here: bisect the qualities
            return 0.5 * (q0 + q1)
        t = (math.log(target_bpp) - math.log(b0)) / (math.log(b1) - math.log(b0))
        guess = q0 + min(0.9, max(0.1, t)) * (q1 - q0)
        return guess if abs(q1 - q0) > 1e-3 else None
    slope = DB_PER_RATE_DOUBLING
    if len(points) >= 2:
        (q0, b0), (q1, b1) = points[-2], points[-1]
        if b1 != b0 and q1 != q0:
            slope = min(30.0, max(3.0, (q1 - q0) / math.log2(b1 / b0)))
    q, b = (below[-1] if below else above[0])
    return min(70.0, max(0.0, q + slope * math.log2(target_bpp / b)))


@dataclass(frozen=True)
class QualitySteer:
    """A pass whose quality moves frame by frame so its bits follow a reference pass's, scaled.

    The rate of the constant-quality encoder is not a smooth function of the quality: an I-frame
    more or less, or new splats starting to pay a few frames earlier, moves a whole clip's bits by
    10-15% between neighbouring qualities (cars, 30 frames: Q 30.31 gave 0.264 bpp, Q 30.39 0.301;
    foreman: Q 29.85 0.187, Q 29.89 0.206), so no constant quality may land within BPP_TOLERANCE.
    As x264's second pass does with its first, this follows the bits of the reference pass (the
    constant-quality pass closest to the target) multiplied by `scale`: before each frame the
    quality is the reference's, moved along the measured slope by the rate still wanted and by how
    far the bits spent so far are off the plan.
    reference_bits: per-frame bits of the reference pass; slope: quality steps per rate doubling.
    frame_types: the reference's I/P/M pattern, which the pass keeps ("": each frame decides by cost).
    Kept, an I-frame more or less can no longer add or take a lump of bits (cuts_qcif at 0.5 bpp: a
    steered pass that dropped one spent 2.5% more, not less as asked). The rate stays noisy in
    lambda with a fixed pattern (cars: Q 30.923, 30.924, 30.927 gave 0.292, 0.286, 0.311 bpp), which
    is why the frames left make up every miss so far (quality_at)."""

    reference_bits: tuple[float, ...]
    quality: float
    scale: float
    slope: float
    frame_types: str = ""

    def frame_type_at(self, index: int) -> str | None:
        """"I", "P" or "M" for frame `index` when the pass keeps the reference's pattern, else None."""
        return self.frame_types[index] if index < len(self.frame_types) else None

    def quality_at(self, index: int, spent_bits: float) -> float:
        """The quality for frame `index` (from 0) of the steered pass, after `spent_bits` in frames:
        the rate of the frames left is the budget left (scale x the reference's total, less what
        was spent) over their reference bits, so every miss so far is made up by the end of the
        clip rather than only partly (the rate is too noisy in lambda for a miss not to recur)."""
        rest = sum(self.reference_bits[index:])
        left = self.scale * sum(self.reference_bits) - spent_bits
        if rest <= 0:
            return self.quality
        q = self.quality + self.slope * math.log2(max(left, 1.0) / rest)
        return min(70.0, max(0.0, self.quality - STEER_RANGE, min(self.quality + STEER_RANGE, q)))


def next_scale(points: list[tuple[float, float]], want_bits: float) -> float:
    """The scale of the next steered pass, given (scale, frame bits) of the passes so far (the
    reference is the pass at scale 1) and the frame bits wanted: a secant in (log scale, log bits)
    through the two passes closest to the target, preferring a pair on either side of it. The
    steer does not spend exactly scale x the reference (its correction lags, and P-frames answer
    lambda less than I-frames), so a proportional update can step short or past the target again
    and again; the measured gain, clamped to [0.5, 2] (it is noisy), does not. One pass, or a gain that says
    nothing (the rate fell as the scale rose): proportional from the newest pass."""
    closest = sorted(points, key=lambda p: abs(math.log(p[1] / want_bits)))
    s0, b0 = closest[0]
    other = next((p for p in closest[1:] if (p[1] - want_bits) * (b0 - want_bits) < 0), None)
    other = other or next((p for p in closest[1:] if p[0] != s0), None)
    if other is not None and other[0] != s0:
        s1, b1 = other
        gain = math.log(b1 / b0) / math.log(s1 / s0)
        if gain > 0:
            return s0 * (want_bits / b0) ** (1.0 / min(2.0, max(0.5, gain)))
    s0, b0 = points[-1]
    return s0 * want_bits / b0


def rate_slope(tried: dict[float, float]) -> float:
    """Quality steps per doubling of the rate: the least-squares slope of quality on log2(bpp) over
    every tried pass (the rate is noisy in the quality, so not just two neighbours), clamped to
    [1.5, 15]; DB_PER_RATE_DOUBLING when the passes say nothing usable."""
    points = [(q, math.log2(b)) for q, b in tried.items() if b > 0]
    if len(points) >= 2:
        mean_q = sum(q for q, _ in points) / len(points)
        mean_r = sum(r for _, r in points) / len(points)
        var = sum((r - mean_r) ** 2 for _, r in points)
        cov = sum((q - mean_q) * (r - mean_r) for q, r in points)
        if var > 0 and cov > 0:
            return min(15.0, max(1.5, cov / var))
    return DB_PER_RATE_DOUBLING


# ----------------------------------------------------------------------------------------------
# landing a frame on its bit target


def search_step_scale(splats: Splats, target_bits: float, around: QuantSteps | None = None
                      ) -> tuple[float, float]:
    """Step scale whose I-frame payload is closest to `target_bits` from below; also returns
    the payload bits at scale 1 (the rate model's unit)."""
    base = around or QuantSteps.default()

    def bits_at(scale: float) -> float:
        q = quantise(splats, base.scaled(scale))
        return 8.0 * len(encode_intra_frame(q, base.scaled(scale)).payload)

    unit = bits_at(1.0)
    lo, hi = math.log2(STEP_SCALE_RANGE[0]), math.log2(STEP_SCALE_RANGE[1])
    if unit <= target_bits:
        hi = 0.0
    else:
        lo = 0.0
    best = 2.0 ** hi
    for _ in range(STEP_SEARCH_ITERS):
        mid = 0.5 * (lo + hi)
        if bits_at(2.0 ** mid) <= target_bits:
            best, hi = 2.0 ** mid, mid
        else:
            lo = mid
    if unit <= target_bits and around is not None:
        best = min(best, 1.0) if bits_at(1.0) <= target_bits else best
    return best, unit


def revert_rows(q: QuantisedSplats, base_q: QuantisedSplats, kept: torch.Tensor, rows: torch.Tensor
                ) -> QuantisedSplats:
    """Put survivor `rows` (indices < len(kept)) back to their base (previous, motion-compensated)
    integers."""
    if len(rows) == 0:
        return q
    out = []
    for cur, prev in ((q.means, base_q.means), (q.chol, base_q.chol), (q.colors, base_q.colors)):
        cur = cur.clone()
        cur[rows] = prev[kept[rows]]
        out.append(cur)
    return QuantisedSplats(*out)


def revert_to_budget(result: InterResult, prev: QuantisedSplats, coded: CodedFrame, target_bits: float
                     ) -> tuple[CodedFrame, QuantisedSplats]:
    """Over budget: put the least important changed survivors back to their previous integers
    (a bisection on how many), until the frame fits or none is left to revert."""
    if 8 * len(coded.payload) <= target_bits:
        return coded, result.q
    n_kept = len(result.kept)
    candidates = torch.nonzero(result.active[:n_kept]).flatten()
    candidates = candidates[torch.argsort(result.priority[candidates])]  # least important first

    def reverted(m: int) -> tuple[CodedFrame, QuantisedSplats]:
        q = revert_rows(result.q, result.base, result.kept, candidates[:m])
        return encode_inter_frame(q, prev, result.kept, result.vectors), q

    lo, hi = 0, len(candidates)  # invariant: lo does not fit; hi fits (or is everything)
    best = reverted(hi)
    while hi - lo > 1 and 8 * len(best[0].payload) <= target_bits:
        mid = (lo + hi) // 2
        trial = reverted(mid)
        if 8 * len(trial[0].payload) <= target_bits:
            hi, best = mid, trial
        else:
            lo = mid
    return best

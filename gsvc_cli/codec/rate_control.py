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

from gsvc_cli.errors import UsageError

MIN_SPLATS = 16
MAX_BPP = 24.0  # more than raw 8-bit 4:4:4: nobody asks for it on purpose


@dataclass(frozen=True)
class RateTarget:
    """Exactly one of bpp, psnr (dB, YUV 6:1:1 of the decoded frames) or splats (count per frame)."""

    bpp: float | None = None
    psnr: float | None = None
    splats: int | None = None

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.bpp, self.psnr, self.splats)]
        if sum(given) != 1:
            raise UsageError("give exactly one of --bpp, --psnr or --splats")
        if self.bpp is not None and not (0 < self.bpp <= MAX_BPP and math.isfinite(self.bpp)):
            raise UsageError(f"--bpp {self.bpp}: must be above 0 and at most {MAX_BPP}")
        if self.psnr is not None and not (10 <= self.psnr <= 80):
            raise UsageError(f"--psnr {self.psnr}: must be between 10 and 80 dB")
        if self.splats is not None and self.splats < 1:
            raise UsageError(f"--splats {self.splats}: must be at least 1")

    def describe(self) -> str:
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

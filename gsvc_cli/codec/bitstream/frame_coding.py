"""Frame payloads: quantised splats of one frame <-> bytes (the payload of a container record).

For the encoder loop (docs/FORMAT.md, "Frame payloads", is the contract):

    coded = encode_intra_frame(q, steps)            # I-frame: starts a GOP, carries its steps
    q = q.select(coded.order)                        # the decoder's splat order (sorted by position)
    ...
    coded = encode_inter_frame(cur, prev, kept, mv)  # P-frame, closed loop on *decoded* integers
    cur = cur.select(coded.order)                    # survivors keep their order; new ones sorted
    frame = decode_frame(coded.payload, prev)        # DecodedFrame: .splats equal `cur` exactly

P-frame semantics (splat identity): `prev` are the previous frame's decoded splats (N_prev, in the
decoder's order); `kept` are the increasing indices of the survivors in `prev`; `cur` holds the
survivors first, in that order (their parameters may have changed), then the new splats. The
payload codes an optional motion field (`MotionVectors`: survivors' centres are predicted at the
previous centre moved by it), a deletion flag per previous splat, a change class per survivor
(which of means, chol, colours differ from the prediction), the integer differences of what
changed, and the new splats intra-coded.
An unchanged frame codes only constant streams, so it costs a few bytes in total.

`FrameStats` (on both coded and decoded frames) gives bits per parameter group and per splat, raw
(8 float32 = 256 bits per splat) and coded, for `gsvc info` and the rate controller.

The coding itself is numpy on [N, 8] integers; the encoder's API takes and returns torch
(QuantisedSplats, index tensors). `decode_values` is the decoder's torch-free entry point, and
importing this module does not import torch.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gsvc_cli.codec.bitstream.dequant import QuantSteps
from gsvc_cli.codec.bitstream.entropy import (
    ByteReader,
    EntropyReader,
    EntropyWriter,
    ModelChoices,
    ModelMemory,
    StreamStats,
    put_varint,
)
from gsvc_cli.codec.bitstream.motion_vectors import (
    FLAG_CONTEXTS,
    MAX_CELL,
    MAX_CELLS,
    MotionVectors,
    flag_contexts,
    median_residuals,
    moving_cells,
    undo_median_residuals,
)
from gsvc_cli.errors import FormatError, GsvcError

if TYPE_CHECKING:
    import torch

    from gsvc_cli.codec.bitstream.quantise import QuantisedSplats

FRAME_I = 0
FRAME_P = 1
FRAME_M = 2
FRAME_M_QUARTER = 3  # an M-frame whose vectors are in quarter pixels (format 5.0)
FRAME_M_RESIDUAL = 4  # an M-frame plus residual splats added to the moved picture (format 6.0)
FRAME_M_FLAGGED = 5  # kinds 2-4 in one, the field coded with zero flags (format 7.0)
FRAME_M_OVERLAPPED = 6  # kind 5 with overlapped cells (format 8.0)
SHARP_UNIT_BIT = 0x80  # kinds 5 and 6's unit byte: quarter pixels through the 8-tap filter (format 9.0)
SAME_STEPS_BIT = 0x40  # kinds 4-6's unit byte: the residual's steps are the memory's (format 10.0)
MEDIAN_UNIT_BIT = 0x20  # kinds 5 and 6's unit byte: moving cells coded against a median (format 12.0)
TEMPORAL_FLAGS_BIT = 0x10  # kinds 5 and 6's unit byte: zero flags split by the last field (format 13.0)
TYPE_LETTER = {FRAME_I: "I", FRAME_P: "P", FRAME_M: "M", FRAME_M_QUARTER: "M", FRAME_M_RESIDUAL: "M",
               FRAME_M_FLAGGED: "M", FRAME_M_OVERLAPPED: "M"}
FIELD_CODINGS = ("best", "neighbour", "flagged")
"""How encode_picture_frame codes an M-frame's field: the smaller of the two, or one of them."""
MAX_SPLATS = 1 << 22
"""Most splats a frame may hold (bounds a decoder's memory; FORMAT.md)."""
RAW_BITS_PER_SPLAT = 8 * 32
"""Raw size of a splat: 8 float32 parameters (the fixed-width reference for 'raw' figures)."""

GROUPS = ("structure", "means", "chol", "colors")
_INTRA_STREAMS = (
    ("first_y", "means"), ("delta_y", "means"), ("x", "means"),
    ("l1", "chol"), ("l3", "chol"), ("shear", "chol"),
    ("c0", "colors"), ("c1", "colors"), ("c2", "colors"),
)
"""Streams of intra-coded splats, in coding order (FORMAT.md, "I-frame entropy block")."""
RESIDUAL_PREFIX = "res."
"""Stream names of an M-frame's residual splats (kind 4)."""
N_CONTEXTS = 4
"""Buckets of the context-coded intra streams (l3, shear, c1, c2) and of d7 in P-frames."""
_DELTA_GROUPS = (("means", 0, 2, 1), ("chol", 2, 5, 2), ("colors", 5, 8, 4))
"""(group, first column, end column, change-class bit) of the [N, 8] integer layout."""


@dataclass
class FrameStats:
    """Bit accounting of one frame payload.

    streams: per entropy stream, model-block bits and ideal range-coded bits (names prefixed "new."
             for the intra-coded new splats of a P-frame).
    payload_bits: 8 * len(payload); `side_bits` is what no stream accounts for (frame header,
             lengths, range-coder flush), so sum(groups) + side = payload_bits.
    """

    frame_type: str
    n_splats: int
    n_kept: int
    n_new: int
    n_deleted: int
    payload_bits: int
    streams: list[StreamStats] = field(default_factory=list)
    stream_groups: dict[str, str] = field(default_factory=dict)

    @property
    def raw_bits(self) -> int:
        return self.n_splats * RAW_BITS_PER_SPLAT

    def bits_by_group(self) -> dict[str, float]:
        """Coded bits per parameter group ("structure", "means", "chol", "colors", "side")."""
        out = dict.fromkeys(GROUPS, 0.0)
        for s in self.streams:
            out[self.stream_groups[s.name]] += s.model_bits + s.ideal_bits
        out["side"] = self.payload_bits - sum(out.values())
        return out

    def bits_per_splat(self) -> dict[str, float]:
        """`bits_by_group` divided by the splat count, plus "total" and "raw" (256)."""
        n = max(self.n_splats, 1)
        out = {k: v / n for k, v in self.bits_by_group().items()}
        out["total"] = self.payload_bits / n
        out["raw"] = float(RAW_BITS_PER_SPLAT) if self.n_splats else 0.0
        return out


@dataclass(frozen=True)
class CodingMemory:
    """What an M-frame may refer back to (format 10.0): the entropy models the M-frames since the
    last I-frame coded each stream with, and the last residual splats' steps. Successive M-frames'
    streams are alike, and their short streams paid as much for model descriptions as for symbols.
    moving (format 13.0): the last M-frame's moving cells ([gh, gw] bool, moving_cells of its
    field), which split the next flagged field's zero flags (flag_contexts).
    An I-frame clears it; a P-frame leaves it as it was."""

    models: ModelMemory = field(default_factory=dict)
    steps: QuantSteps | None = None
    moving: np.ndarray | None = field(default=None, compare=False)

    def after(self, used: ModelMemory, steps: QuantSteps | None, motion: MotionVectors) -> CodingMemory:
        """The memory once an M-frame with field `motion` that coded its streams with `used` (and
        its residual with `steps`, when not None) is decoded."""
        return CodingMemory({**self.models, **used}, steps if steps is not None else self.steps,
                            moving_cells(motion.vectors))

    def flag_contexts(self, motion: MotionVectors) -> np.ndarray | None:
        """The contexts of `motion`'s zero flags when the last M-frame's field has its grid, else None."""
        if self.moving is None or self.moving.shape != motion.vectors.shape[:2]:
            return None
        return flag_contexts(self.moving)

    def same_steps(self, steps: QuantSteps) -> bool:
        """Whether `steps` are the memory's as the payload would carry them (float32)."""
        return self.steps is not None and _packed_steps(self.steps) == _packed_steps(steps)


def _packed_steps(steps: QuantSteps) -> bytes:
    return struct.pack("<6f", *steps.as_tuple())


@dataclass
class CodedFrame:
    """An encoded frame: payload bytes, the splat order the decoder will have, and the accounting.

    order: [N] int64, decoded splat i is input splat order[i]; apply it with `q.select(order)`.
    memory: an M-frame's CodingMemory once it is decoded (the encoder keeps it if it keeps the frame).
    """

    payload: bytes
    order: torch.Tensor
    stats: FrameStats
    memory: CodingMemory | None = None

    @property
    def frame_type(self) -> str:
        return self.stats.frame_type


@dataclass
class DecodedFrame:
    """A decoded frame: its integers, its steps (I-frames only) and the survivors' indices.

    kept: [n_kept] int64, increasing indices into the previous frame (empty for I-frames).
    """

    frame_type: str
    splats: QuantisedSplats
    steps: QuantSteps | None
    kept: torch.Tensor
    stats: FrameStats


@dataclass
class DecodedValues:
    """A decoded frame as numpy integers, for the torch-free decoder (`decode_values`).

    values: [N, 8] int64 in the coding order (x, y, l1, shear, l3, c0, c1, c2), the decoder's
    splat order. steps: the GOP's steps (I-frames), or an M-frame's residual's own. kept: [n_kept]
    int64 survivors' indices. motion: an M-frame's field (whole or quarter pixels per cell); its
    values are its residual splats (kind 4), else empty. An M-frame's values and steps never become
    the next P-frame's reference: that stays the last I- or P-frame. memory: the CodingMemory the
    next frame decodes with.
    """

    frame_type: str
    values: np.ndarray
    steps: QuantSteps | None
    kept: np.ndarray
    stats: FrameStats
    motion: MotionVectors | None = None
    memory: CodingMemory | None = None


# ----------------------------------------------------------------------------------------------
# intra coding (I-frames and the new splats of P-frames)


def _position_order(values: np.ndarray) -> np.ndarray:
    """Raster order of the quantised centres: by y, then x, then the remaining parameters."""
    keys = tuple(values[:, c] for c in (7, 6, 5, 4, 3, 2, 0, 1))
    return np.lexsort(keys).astype(np.int64)


PRED_SHIFT = 16
"""Linear predictions are floor((sum_j a_j * source_j + b) / 2**16): coefficients in 1/65536."""
MAX_PRED_COEF = 1 << 24
MAX_PRED_OFFSET = 1 << 56
MAX_SOURCE = 1 << 30
MIN_PREDICTED = 64
"""A predicted stream of fewer values has no `.pred` stream (zero coefficients): on a handful of
splats the coefficients would cost more than they save."""
_INTRA_SOURCES = {"l3": (2,), "c1": (5,), "c2": (5, 6)}
"""Columns each intra stream is linearly predicted from (colour channels move together:
a splat's amplitude scales all three; l3 follows l1 for round splats)."""
_DELTA_SOURCES = {1: (0,), 6: (5,), 7: (5, 6)}
"""The same for P-frame differences, within a group's survivors."""


def linear_prediction(sources: np.ndarray, params: np.ndarray) -> np.ndarray:
    """floor((sum_j params[j] * sources[:, j] + params[-1]) / 2**16), exact in int64.

    With |params[j]| <= 2**24, |params[-1]| <= 2**56 and |sources| < 2**30 nothing overflows.
    """
    acc = np.full(len(sources), int(params[-1]), dtype=np.int64)
    for j in range(sources.shape[1]):
        acc += int(params[j]) * sources[:, j]
    return acc >> PRED_SHIFT


def _fit_prediction(sources: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares coefficients in fixed point (encoder side only; any integers are valid)."""
    design = np.concatenate([sources.astype(np.float64), np.ones((len(target), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design, target.astype(np.float64), rcond=None)
    if not np.isfinite(coef).all():
        return np.zeros(sources.shape[1] + 1, dtype=np.int64)
    scaled = np.round(coef * (1 << PRED_SHIFT))
    scaled[-1] += 1 << (PRED_SHIFT - 1)  # floor() of the sum then rounds to nearest
    limits = np.array([MAX_PRED_COEF] * sources.shape[1] + [MAX_PRED_OFFSET], dtype=np.float64)
    return np.clip(scaled, -limits, limits).astype(np.int64)


def _add_predicted(writer: EntropyWriter, name: str, target: np.ndarray, sources: np.ndarray,
                   contexts: np.ndarray | None, n_contexts: int) -> None:
    """Stream `name.pred` (coefficients) then `name` (residuals), or zero coefficients (no
    prediction) when the fitted ones do not pay for themselves."""
    zero = np.zeros(sources.shape[1] + 1, dtype=np.int64)
    if len(target) < MIN_PREDICTED:
        writer.add(name, target, contexts, n_contexts)
        return
    # Keep the coefficients when the residuals' mean absolute deviation (the scale of a Laplace
    # model, whose cost is about log2 of it per value) shrinks enough to pay for them.
    fitted = _fit_prediction(sources, target)
    residual = target - linear_prediction(sources, fitted)
    spread_before = float(np.abs(target - _median(target)).mean()) + 0.5
    spread_after = float(np.abs(residual - _median(residual)).mean()) + 0.5
    gain_bits = len(target) * np.log2(spread_before / spread_after)
    best = fitted if fitted.any() and gain_bits > 16 * len(fitted) + 16 else zero
    writer.add(name + ".pred", best)
    writer.add(name, target - linear_prediction(sources, best), contexts, n_contexts)


def _read_predicted(reader: EntropyReader, name: str, count: int, sources: np.ndarray,
                    contexts: np.ndarray | None, n_contexts: int) -> np.ndarray:
    """Inverse of `_add_predicted`; refuses coefficients or sources outside the bounds."""
    if count < MIN_PREDICTED:
        return reader.read(count, name, contexts, n_contexts)
    params = reader.read(sources.shape[1] + 1, name + ".pred")
    if (np.abs(params[:-1]) > MAX_PRED_COEF).any() or abs(int(params[-1])) > MAX_PRED_OFFSET:
        raise FormatError(f"{reader.what}: prediction coefficients of {name} out of range")
    if len(sources) and int(np.abs(sources).max()) >= MAX_SOURCE:
        raise FormatError(f"{reader.what}: decoded splat parameters out of range (corrupt payload)")
    residual = reader.read(count, name, contexts, n_contexts)
    return residual + linear_prediction(sources, params)


def _median(values: np.ndarray) -> int:
    """Upper median, sorted(values)[n // 2] (integers: exact on every machine; a partition puts that
    element where a sort would, without sorting the rest)."""
    middle = len(values) // 2
    return int(np.partition(values, middle)[middle]) if len(values) else 0


def rank_contexts(keys: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket of each key by its rank among all keys (equal-count buckets, integer-exact).

    Thresholds t_j = sorted(keys)[j * n // n_buckets] for j = 1 .. n_buckets - 1; a key's bucket
    is the number of thresholds <= key. Ranks adapt to any quantiser step and content, and the
    decoder computes them from values it decoded before the stream they select models for.
    """
    keys = np.asarray(keys, dtype=np.int64)
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = (np.arange(1, n_buckets) * len(keys)) // n_buckets
    thresholds = np.partition(keys, ranks)[ranks]  # each kth element where a sort would put it
    return np.searchsorted(thresholds, keys, side="right").astype(np.int64)


def _intra_contexts(values: np.ndarray, name: str) -> np.ndarray | None:
    """Contexts of an intra stream from the columns decoded before it (None: a single model).

    l3 by the rank of l1 (isotropy), shear by the rank of |l1 - l3| (elongated splats shear
    more), c1 by the rank of |c0 - median c0|, c2 by the rank of |c1 - median c1| (strong
    chroma and luma amplitudes come together).
    """
    if name == "l3":
        return rank_contexts(values[:, 2], N_CONTEXTS)
    if name == "shear":
        return rank_contexts(np.abs(values[:, 2] - values[:, 4]), N_CONTEXTS)
    if name in ("c1", "c2"):
        source = values[:, 5 if name == "c1" else 6]
        return rank_contexts(np.abs(source - _median(source)), N_CONTEXTS)
    return None


_INTRA_COLUMNS = {"x": 0, "l1": 2, "shear": 3, "l3": 4, "c0": 5, "c1": 6, "c2": 7}


def _write_intra(writer: EntropyWriter, values: np.ndarray, prefix: str) -> None:
    """Code sorted [n, 8] integers: y as a first value plus steps, the rest with contexts."""
    if len(values) == 0:
        for name, _ in _INTRA_STREAMS:
            writer.add(prefix + name, values[:0, 0])
        return
    y = values[:, 1]
    writer.add(prefix + "first_y", y[:1])
    writer.add(prefix + "delta_y", np.diff(y))
    for name, _ in _INTRA_STREAMS[2:]:
        contexts = _intra_contexts(values, name)
        n_contexts = N_CONTEXTS if contexts is not None else 0
        target = values[:, _INTRA_COLUMNS[name]]
        if name in _INTRA_SOURCES:
            sources = values[:, list(_INTRA_SOURCES[name])]
            _add_predicted(writer, prefix + name, target, sources, contexts, n_contexts)
        else:
            writer.add(prefix + name, target, contexts, n_contexts)


def _read_intra(reader: EntropyReader, count: int, prefix: str) -> np.ndarray:
    out = np.zeros((count, 8), dtype=np.int64)
    if count == 0:
        return out
    first_y = reader.read(1, prefix + "first_y")
    delta_y = reader.read(count - 1, prefix + "delta_y")
    out[:, 1] = np.cumsum(np.concatenate([first_y, delta_y]))
    for name, _ in _INTRA_STREAMS[2:]:
        contexts = _intra_contexts(out, name)
        n_contexts = N_CONTEXTS if contexts is not None else 0
        if name in _INTRA_SOURCES:
            sources = out[:, list(_INTRA_SOURCES[name])]
            out[:, _INTRA_COLUMNS[name]] = _read_predicted(reader, prefix + name, count, sources,
                                                           contexts, n_contexts)
        else:
            out[:, _INTRA_COLUMNS[name]] = reader.read(count, prefix + name, contexts, n_contexts)
    return out


def _delta_contexts(column: int, deltas: np.ndarray) -> np.ndarray | None:
    """Contexts of a P-frame difference stream from the same survivors' earlier differences.

    d1 (y) by the rank of |d0 - median d0| (3 buckets; splats moving with the global motion vs
    against it), d7 by the rank of |d5| + |d6| (colour changes come together). `deltas` holds
    the rows of the survivors of this group, columns decoded so far filled in.
    """
    if column == 1:
        return rank_contexts(np.abs(deltas[:, 0] - _median(deltas[:, 0])), 3)
    if column == 7:
        return rank_contexts(np.abs(deltas[:, 5]) + np.abs(deltas[:, 6]), N_CONTEXTS)
    return None


_DELTA_BUCKETS = {1: 3, 7: N_CONTEXTS}


def _write_motion(head: bytearray, writer: EntropyWriter, motion: MotionVectors | None) -> None:
    """Field size in the frame header (0 0: no field), its residuals as streams mv.x, mv.y."""
    if motion is None:
        put_varint(head, 0)
        put_varint(head, 0)
        return
    gh, gw, _ = motion.vectors.shape
    for value in (gw, gh, motion.cell):
        put_varint(head, value)
    rx, ry = motion.residuals()
    writer.add("mv.x", rx)
    writer.add("mv.y", ry)


def _write_flagged_motion(head: bytearray, writer: EntropyWriter, motion: MotionVectors,
                          contexts: np.ndarray | None = None) -> None:
    """Kind 5's field with unit + 32 (format 12.0): its size in the header, then streams mv.zero (1:
    the cell's vector is its neighbour predictor's, left or above), and mv.x, mv.y over the cells
    flagged 0 only, against the median of their left, upper and upper-right neighbours
    (motion_vectors.median_residuals), mv.y with contexts "mv.x is 0" (then mv.y is not). Most
    cells of a chosen field repeat their neighbour's vector: a flag codes them in a fraction of a
    bit; where the motion changes, the row above predicts the new vector better than the left
    neighbour alone (2-6% fewer field bits on street 1080p, mobile, foreman and cuts_qcif).
    With `contexts` (unit + 16, format 13.0: CodingMemory.flag_contexts), mv.zero may be split by
    them."""
    gh, gw, _ = motion.vectors.shape
    for value in (gw, gh, motion.cell):
        put_varint(head, value)
    moving, residuals = median_residuals(motion.vectors)
    writer.add("mv.zero", (~moving).astype(np.int64), contexts, FLAG_CONTEXTS if contexts is not None else 0)
    writer.add("mv.x", residuals[:, 0])
    writer.add("mv.y", residuals[:, 1], (residuals[:, 0] != 0).astype(np.int64), 2)


def _read_flagged_motion(entropy: EntropyReader, gw: int, gh: int, cell: int, what: str,
                         per_pixel: int, overlapped: bool = False, sharp: bool = False,
                         median: bool = False, contexts: np.ndarray | None = None) -> MotionVectors:
    """Kinds 5 and 6's field (`median`: unit + 32, format 12.0; else the neighbour residuals of
    formats 7.0-11.0; `contexts`: unit + 16, format 13.0, mv.zero's)."""
    _check_field_size(gw, gh, cell, what)
    zero = entropy.read(gw * gh, "mv.zero", contexts, FLAG_CONTEXTS if contexts is not None else 0)
    if len(zero) and (zero.min() < 0 or zero.max() > 1):
        raise FormatError(f"{what}: bad motion field flags")
    moving = zero == 0
    count = int(moving.sum())
    mx = entropy.read(count, "mv.x")
    my = entropy.read(count, "mv.y", (mx != 0).astype(np.int64), 2)
    try:
        if median:
            vectors = undo_median_residuals(moving, np.stack([mx, my], axis=-1), gh, gw)
            return MotionVectors(vectors, cell, per_pixel, overlapped, sharp)
        rx = np.zeros(gw * gh, dtype=np.int64)
        ry = np.zeros(gw * gh, dtype=np.int64)
        rx[moving], ry[moving] = mx, my
        return MotionVectors.from_residuals(rx, ry, gw, gh, cell, per_pixel, overlapped, sharp)
    except ValueError as exc:
        raise FormatError(f"{what}: bad motion field ({exc})") from exc


def _check_field_size(gw: int, gh: int, cell: int, what: str) -> None:
    if not (gw >= 1 and gh >= 1 and gw * gh <= MAX_CELLS and 1 <= cell <= MAX_CELL):
        raise FormatError(f"{what}: bad motion field size ({gw}x{gh} cells of {cell})")


def motion_field_bits(motion: MotionVectors) -> int:
    """What carrying `motion` adds to a P-frame, in bits (its streams and its size varints)."""
    head, writer = bytearray(), EntropyWriter()
    _write_motion(head, writer, motion)
    return 8 * (len(head) + len(writer.finish()))


def _read_motion(entropy: EntropyReader, gw: int, gh: int, cell: int, what: str,
                 per_pixel: int = 1) -> MotionVectors | None:
    if gw == 0 and gh == 0:
        return None
    _check_field_size(gw, gh, cell, what)
    rx = entropy.read(gw * gh, "mv.x")
    ry = entropy.read(gw * gh, "mv.y")
    try:
        return MotionVectors.from_residuals(rx, ry, gw, gh, cell, per_pixel)
    except ValueError as exc:
        raise FormatError(f"{what}: bad motion field ({exc})") from exc


def _stream_groups(prefixes: tuple[str, ...]) -> dict[str, str]:
    groups = {"deleted": "structure", "change": "structure", "mv.zero": "means", "mv.x": "means",
              "mv.y": "means"}
    for prefix in prefixes:
        for name, group in _INTRA_STREAMS:
            groups[prefix + name] = group
            groups[prefix + name + ".pred"] = group
    for group, first, end, _ in _DELTA_GROUPS:
        for column in range(first, end):
            groups[f"d{column}"] = group
            groups[f"d{column}.pred"] = group
    return groups


def _check_decoded(values: np.ndarray, what: str) -> np.ndarray:
    """Refuse decoded [N, 8] integers no encoder could have written."""
    if len(values) and int(np.abs(values).max()) >= (1 << 30):
        raise FormatError(f"{what}: decoded splat parameters out of range (corrupt payload)")
    return values


def _check_range(values: np.ndarray, what: str) -> None:
    if len(values) > MAX_SPLATS:
        raise GsvcError(f"cannot code {what}: {len(values)} splats, at most {MAX_SPLATS} allowed")
    if len(values) and int(np.abs(values).max()) >= (1 << 30):
        raise GsvcError(f"cannot code {what}: quantised values out of range")


# ----------------------------------------------------------------------------------------------
# public API


def encode_intra_frame(q: QuantisedSplats, steps: QuantSteps) -> CodedFrame:
    """I-frame: every splat intra-coded, the GOP's `steps` stored. Splats are reordered by position.

    q: N quantised splats under `steps`. Returns the payload and `order` ([N], see CodedFrame).
    """
    values = q.as_array()
    _check_range(values, "I-frame")
    order = _position_order(values)
    values = values[order]
    head = bytearray([FRAME_I])
    put_varint(head, len(values))
    head += struct.pack("<6f", *steps.as_tuple())
    writer = EntropyWriter()
    _write_intra(writer, values, "")
    payload = bytes(head) + writer.finish()
    stats = FrameStats("I", len(values), 0, len(values), 0, 8 * len(payload), writer.stats,
                       _stream_groups(("",)))
    return CodedFrame(payload, _tensor(order), stats)


def _tensor(values: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(values)


def encode_inter_frame(q: QuantisedSplats, prev: QuantisedSplats, kept: torch.Tensor,
                       motion: MotionVectors | None = None) -> CodedFrame:
    """P-frame, closed loop: `q` = survivors of `prev` (indices `kept`, increasing) then new splats.

    prev: the previous frame's *decoded* splats (N_prev). kept: [n_kept] integer indices into prev.
    q: [N >= n_kept] splats in the same quantiser steps as prev (the GOP's). motion: the field that
    predicts the survivors' centres (None or all zero: no field, the previous centres).
    Returns the payload and `order` ([N]: the survivors in place, then the new splats sorted).
    """
    import torch

    kept_np = np.asarray(torch.as_tensor(kept).cpu().numpy(), dtype=np.int64).reshape(-1)
    n_prev, n_cur, n_kept = len(prev), len(q), len(kept_np)
    if n_kept > n_cur:
        raise GsvcError(f"P-frame keeps {n_kept} splats but has only {n_cur}")
    if n_kept and (kept_np[0] < 0 or kept_np[-1] >= n_prev or (np.diff(kept_np) <= 0).any()):
        raise GsvcError("P-frame `kept` must be increasing indices into the previous frame")
    cur_values = q.as_array()
    if motion is not None and motion.is_zero():
        motion = None
    prev_values = prev.as_array() if motion is None else motion.predict(prev.as_array())
    _check_range(cur_values, "P-frame")
    deleted = np.ones(n_prev, dtype=np.int64)
    deleted[kept_np] = 0
    deltas = cur_values[:n_kept] - prev_values[kept_np]
    change = np.zeros(n_kept, dtype=np.int64)
    for _, first, end, bit in _DELTA_GROUPS:
        change |= np.where((deltas[:, first:end] != 0).any(axis=1), bit, 0)
    new_values = cur_values[n_kept:]
    new_order = _position_order(new_values)

    head = bytearray([FRAME_P])
    put_varint(head, n_cur)
    put_varint(head, n_prev)
    writer = EntropyWriter()
    _write_motion(head, writer, motion)
    writer.add("deleted", deleted)
    writer.add("change", change)
    for _, first, end, bit in _DELTA_GROUPS:
        rows = (change & bit) != 0
        for column in range(first, end):
            contexts = _delta_contexts(column, deltas[rows])
            n_contexts = _DELTA_BUCKETS.get(column, 0)
            if column in _DELTA_SOURCES:
                sources = deltas[rows][:, list(_DELTA_SOURCES[column])]
                _add_predicted(writer, f"d{column}", deltas[rows, column], sources, contexts, n_contexts)
            else:
                writer.add(f"d{column}", deltas[rows, column], contexts, n_contexts)
    _write_intra(writer, new_values[new_order], "new.")
    payload = bytes(head) + writer.finish()
    order = np.concatenate([np.arange(n_kept, dtype=np.int64), n_kept + new_order])
    stats = FrameStats("P", n_cur, n_kept, n_cur - n_kept, n_prev - n_kept, 8 * len(payload),
                       writer.stats, _stream_groups(("new.",)))
    return CodedFrame(payload, _tensor(order), stats)


def encode_picture_frame(motion: MotionVectors, residual: tuple[QuantisedSplats, QuantSteps] | None = None,
                         field_coding: str = "best", memory: CodingMemory | None = None,
                         choices: ModelChoices | None = None) -> CodedFrame:
    """M-frame: no splats, the previous decoded picture moved by `motion` (whole or quarter pixels,
    per cell of `motion.cell` pixels, covering the frame: gsvc_cli.codec.moved_picture). With
    `residual` (N >= 1 quantised splats and their steps), those splats, intra-coded, are rendered
    and added to the moved picture (`order` then applies to them, as an I-frame's). field_coding
    (FIELD_CODINGS): "neighbour" writes kinds 2-4 (format 6.0), "flagged" kind 5, "best" the
    shorter payload of the two. An overlapped field (motion.overlapped) has one coding: kind 6,
    kind 5's with the overlap; a field read through the 8-tap filter (motion.sharp) is kind 5 or 6
    (its unit byte says so). memory: what the M-frames before it left (CodingMemory; None: an
    I-frame came last), which its streams and steps may repeat. choices: models chosen for earlier
    payloads of this field (EntropyWriter), which the same streams reuse: the same bytes, sooner."""
    if field_coding not in FIELD_CODINGS:
        raise ValueError(f"field coding {field_coding!r}: one of {', '.join(FIELD_CODINGS)}")
    if motion.overlapped or motion.sharp:
        if field_coding == "neighbour":
            raise ValueError("an overlapped or 8-tap field is coded with zero flags only (kinds 5, 6)")
        field_coding = "flagged"
    order = np.zeros(0, dtype=np.int64)
    values = np.zeros((0, 8), dtype=np.int64)
    steps: QuantSteps | None = None
    if residual is not None:
        q, steps = residual
        values = q.as_array()
        if len(values) == 0:
            raise ValueError("an M-frame's residual needs at least one splat")
        _check_range(values, "M-frame residual")
        order = _position_order(values)
        values = values[order]
    memory = memory if memory is not None else CodingMemory()
    options = [_picture_payload(motion, values, steps, flagged, memory, choices) for flagged in (False, True)
               if field_coding == "best" or (field_coding == "flagged") == flagged]
    payload, writer = min(options, key=lambda option: len(option[0]))
    prefixes = (RESIDUAL_PREFIX,) if len(values) else ()
    stats = FrameStats("M", len(values), 0, len(values), 0, 8 * len(payload), writer.stats,
                       _stream_groups(prefixes))
    return CodedFrame(payload, _tensor(order), stats, memory.after(writer.used, steps, motion))


def _picture_payload(motion: MotionVectors, values: np.ndarray, steps: QuantSteps | None,
                     flagged: bool, memory: CodingMemory, choices: ModelChoices | None = None
                     ) -> tuple[bytes, EntropyWriter]:
    """An M-frame's payload of kind 2, 3 or 4 (flagged False) or 5 (6 when the field is
    overlapped), and its writer (the stats and the models it used)."""
    writer = EntropyWriter(memory.models, choices)
    same_steps = bool(len(values)) and steps is not None and memory.same_steps(steps)
    repeat = SAME_STEPS_BIT if same_steps else 0
    contexts = memory.flag_contexts(motion) if flagged else None
    if flagged:
        head = bytearray([FRAME_M_OVERLAPPED if motion.overlapped else FRAME_M_FLAGGED])
        put_varint(head, len(values))
        head.append(motion.per_pixel | (SHARP_UNIT_BIT if motion.sharp else 0) | repeat | MEDIAN_UNIT_BIT
                    | (TEMPORAL_FLAGS_BIT if contexts is not None else 0))
    elif len(values):
        head = bytearray([FRAME_M_RESIDUAL])
        put_varint(head, len(values))
        head.append(motion.per_pixel | repeat)
    else:
        head = bytearray([FRAME_M_QUARTER if motion.per_pixel == 4 else FRAME_M])
        put_varint(head, 0)
    if len(values) and not same_steps:
        assert steps is not None
        head += _packed_steps(steps)
    if flagged:
        _write_flagged_motion(head, writer, motion, contexts)
    else:
        _write_motion(head, writer, motion)
    if len(values):
        _write_intra(writer, values, RESIDUAL_PREFIX)
    return bytes(head) + writer.finish(), writer


def decode_frame(payload: bytes, prev: QuantisedSplats | None, what: str = "frame",
                 expected_type: str | None = None) -> DecodedFrame:
    """Payload -> quantised splats. P-frames need `prev`, the previous decoded frame's splats.
    `decode_values` on QuantisedSplats (torch), for the encoder and the tests."""
    from gsvc_cli.codec.bitstream.quantise import QuantisedSplats

    decoded = decode_values(payload, prev.as_array() if prev is not None else None, what, expected_type)
    return DecodedFrame(decoded.frame_type, QuantisedSplats.from_array(decoded.values), decoded.steps,
                        _tensor(decoded.kept), decoded.stats)


def decode_values(payload: bytes, prev: np.ndarray | None, what: str = "frame",
                  expected_type: str | None = None, memory: CodingMemory | None = None) -> DecodedValues:
    """Payload -> [N, 8] integers. P-frames need `prev`, the [N_prev, 8] integers of the last I- or
    P-frame before them (an M-frame has none and leaves them as they were). `memory`: the
    CodingMemory the frame before it left (`DecodedValues.memory`; None for the first frame or
    after a seek, where an I-frame comes first).

    `what` names the frame in errors (e.g. "clip.gsvc: frame 7"); `expected_type` ("I"/"P"), when
    given, is the container record's type, which the payload must agree with. Raises FormatError
    on any inconsistency (type, counts, truncated or corrupt payload, P-frame without a previous
    frame).
    """
    reader = ByteReader(payload, what)
    frame_type = reader.u8()
    if expected_type is not None and TYPE_LETTER.get(frame_type) != expected_type:
        raise FormatError(f"{what}: record says {expected_type}-frame, payload disagrees")
    n_cur = reader.varint()
    if n_cur > MAX_SPLATS:
        raise FormatError(f"{what}: {n_cur} splats is more than a frame may hold ({MAX_SPLATS})")
    if frame_type == FRAME_I:
        steps = _read_steps(reader, what)
        entropy = EntropyReader(reader.remaining(), what)
        values = _read_intra(entropy, n_cur, "")
        entropy.check_consumed()
        stats = FrameStats("I", n_cur, 0, n_cur, 0, 8 * len(payload), entropy.stats,
                           _stream_groups(("",)))
        return DecodedValues("I", _check_decoded(values, what), steps, np.zeros(0, dtype=np.int64), stats,
                             memory=CodingMemory())
    memory = memory if memory is not None else CodingMemory()
    if frame_type in (FRAME_M, FRAME_M_QUARTER):
        return _decode_picture_frame(reader, n_cur, payload, what, 4 if frame_type == FRAME_M_QUARTER else 1,
                                     memory)
    if frame_type == FRAME_M_RESIDUAL:
        return _decode_residual_picture_frame(reader, n_cur, payload, what, memory)
    if frame_type in (FRAME_M_FLAGGED, FRAME_M_OVERLAPPED):
        return _decode_flagged_picture_frame(reader, n_cur, payload, what, frame_type == FRAME_M_OVERLAPPED,
                                             memory)
    if frame_type != FRAME_P:
        raise FormatError(f"{what}: unknown frame type {frame_type}")
    if prev is None:
        raise FormatError(f"{what}: P-frame without a previous frame (a GOP must start with an I-frame)")
    n_prev = reader.varint()
    if n_prev != len(prev):  # also bounds n_prev
        raise FormatError(f"{what}: P-frame predicts from {n_prev} splats, previous frame has {len(prev)}")
    gw, gh = reader.varint(), reader.varint()
    cell = reader.varint() if gw else 0
    entropy = EntropyReader(reader.remaining(), what)
    motion = _read_motion(entropy, gw, gh, cell, what)
    deleted = entropy.read(n_prev, "deleted")
    if len(deleted) and (deleted.min() < 0 or deleted.max() > 1):
        raise FormatError(f"{what}: bad deletion flags")
    kept = np.flatnonzero(deleted == 0).astype(np.int64)
    n_kept = len(kept)
    if n_kept > n_cur:
        raise FormatError(f"{what}: {n_kept} survivors but only {n_cur} splats")
    change = entropy.read(n_kept, "change")
    if len(change) and (change.min() < 0 or change.max() > 7):
        raise FormatError(f"{what}: bad change classes")
    values = np.zeros((n_cur, 8), dtype=np.int64)
    values[:n_kept] = (prev if motion is None else motion.predict(prev))[kept]
    for _, first, end, bit in _DELTA_GROUPS:
        rows = np.flatnonzero((change & bit) != 0)
        group = np.zeros((len(rows), 8), dtype=np.int64)
        for column in range(first, end):
            contexts = _delta_contexts(column, group)
            n_contexts = _DELTA_BUCKETS.get(column, 0)
            if column in _DELTA_SOURCES:
                sources = group[:, list(_DELTA_SOURCES[column])]
                group[:, column] = _read_predicted(entropy, f"d{column}", len(rows), sources, contexts,
                                                   n_contexts)
            else:
                group[:, column] = entropy.read(len(rows), f"d{column}", contexts, n_contexts)
        values[rows, first:end] += group[:, first:end]
    values[n_kept:] = _read_intra(entropy, n_cur - n_kept, "new.")
    entropy.check_consumed()
    stats = FrameStats("P", n_cur, n_kept, n_cur - n_kept, n_prev - n_kept, 8 * len(payload),
                       entropy.stats, _stream_groups(("new.",)))
    return DecodedValues("P", _check_decoded(values, what), None, kept, stats, memory=memory)


def _read_steps(reader: ByteReader, what: str) -> QuantSteps:
    steps_raw = struct.unpack("<6f", reader.bytes(24))
    try:
        return QuantSteps.from_tuple(steps_raw)
    except GsvcError as exc:
        raise FormatError(f"{what}: bad quantiser steps ({exc})") from exc


def _read_residual_steps(reader: ByteReader, what: str, unit: int, memory: CodingMemory) -> QuantSteps:
    """A residual's steps: in the payload, or (SAME_STEPS_BIT in `unit`) the memory's."""
    if not unit & SAME_STEPS_BIT:
        return _read_steps(reader, what)
    if memory.steps is None:
        raise FormatError(f"{what}: M-frame repeats residual steps no earlier M-frame gave")
    return memory.steps


def _read_picture_field(reader: ByteReader, what: str, per_pixel: int,
                        memory: CodingMemory) -> tuple[EntropyReader, MotionVectors]:
    """An M-frame's field size (header varints), then its streams mv.x, mv.y: the entropy reader
    positioned after them, and the field."""
    gw, gh, cell = reader.varint(), reader.varint(), reader.varint()
    if not (gw >= 1 and gh >= 1):
        raise FormatError(f"{what}: M-frame without a motion field")
    entropy = EntropyReader(reader.remaining(), what, memory.models)
    motion = _read_motion(entropy, gw, gh, cell, what, per_pixel)
    assert motion is not None  # gw, gh >= 1
    return entropy, motion


def _decode_picture_frame(reader: ByteReader, n_cur: int, payload: bytes, what: str,
                          per_pixel: int, memory: CodingMemory) -> DecodedValues:
    """The rest of an M-frame's payload: its field (which the decoder checks against the frame size)."""
    if n_cur != 0:
        raise FormatError(f"{what}: an M-frame holds no splats, payload says {n_cur}")
    entropy, motion = _read_picture_field(reader, what, per_pixel, memory)
    entropy.check_consumed()
    stats = FrameStats("M", 0, 0, 0, 0, 8 * len(payload), entropy.stats, _stream_groups(()))
    empty = np.zeros((0, 8), dtype=np.int64)
    return DecodedValues("M", empty, None, np.zeros(0, dtype=np.int64), stats, motion,
                         memory.after(entropy.used, None, motion))


def _decode_residual_picture_frame(reader: ByteReader, n_cur: int, payload: bytes,
                                   what: str, memory: CodingMemory) -> DecodedValues:
    """Kind 4: an M-frame's field, then its residual splats (values, with their own steps)."""
    if n_cur < 1:
        raise FormatError(f"{what}: an M-frame with a residual holds at least one splat, "
                          f"payload says {n_cur}")
    unit = reader.u8()
    per_pixel = unit & ~SAME_STEPS_BIT
    if per_pixel not in (1, 4):
        raise FormatError(f"{what}: M-frame vectors in 1/{per_pixel} pixels (only 1 and 4 exist)")
    steps = _read_residual_steps(reader, what, unit, memory)
    entropy, motion = _read_picture_field(reader, what, per_pixel, memory)
    values = _read_intra(entropy, n_cur, RESIDUAL_PREFIX)
    entropy.check_consumed()
    stats = FrameStats("M", n_cur, 0, n_cur, 0, 8 * len(payload), entropy.stats,
                       _stream_groups((RESIDUAL_PREFIX,)))
    return DecodedValues("M", _check_decoded(values, what), steps, np.zeros(0, dtype=np.int64), stats, motion,
                         memory.after(entropy.used, steps, motion))


def _decode_flagged_picture_frame(reader: ByteReader, n_cur: int, payload: bytes, what: str,
                                  overlapped: bool, memory: CodingMemory) -> DecodedValues:
    """Kinds 5 and 6: an M-frame's unit, steps when it has residual splats, its flagged field, then
    the splats (none, or at least one)."""
    unit = reader.u8()
    per_pixel = unit & ~(SHARP_UNIT_BIT | SAME_STEPS_BIT | MEDIAN_UNIT_BIT | TEMPORAL_FLAGS_BIT)
    sharp, median = bool(unit & SHARP_UNIT_BIT), bool(unit & MEDIAN_UNIT_BIT)
    if per_pixel not in (1, 4) or (sharp and per_pixel != 4) or (unit & SAME_STEPS_BIT and not n_cur):
        raise FormatError(f"{what}: M-frame unit byte {unit} (1, 4 or 4 + 128, + 64 with residual steps, "
                          "+ 32 with median prediction, + 16 with flags split by the last field)")
    steps = _read_residual_steps(reader, what, unit, memory) if n_cur else None
    gw, gh, cell = reader.varint(), reader.varint(), reader.varint()
    contexts = None
    if unit & TEMPORAL_FLAGS_BIT:
        if memory.moving is None or memory.moving.shape != (gh, gw):
            raise FormatError(f"{what}: M-frame splits its flags by a last field of another size or none")
        contexts = flag_contexts(memory.moving)
    entropy = EntropyReader(reader.remaining(), what, memory.models)
    motion = _read_flagged_motion(entropy, gw, gh, cell, what, per_pixel, overlapped, sharp, median, contexts)
    values = _read_intra(entropy, n_cur, RESIDUAL_PREFIX)
    entropy.check_consumed()
    prefixes = (RESIDUAL_PREFIX,) if n_cur else ()
    stats = FrameStats("M", n_cur, 0, n_cur, 0, 8 * len(payload), entropy.stats, _stream_groups(prefixes))
    return DecodedValues("M", _check_decoded(values, what), steps, np.zeros(0, dtype=np.int64), stats, motion,
                         memory.after(entropy.used, steps, motion))

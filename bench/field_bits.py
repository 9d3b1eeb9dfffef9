"""What an M-frame's motion field costs, and what other predictors would make of it.

    python bench/field_bits.py clip.gsvc [more.gsvc ...]

For every M-frame of each file: its payload re-coded with this checkout's coder (the same field,
residual splats, steps and model-memory chain: the saving of a coding change on fixed frames),
and the bits of its moving cells' vectors (the cells whose vector is not their left neighbour's)
under several predictors, each coded as the flagged field codes them (streams mv.x and mv.y of
our entropy coder). Prints one table per file. BENCHMARKS.md "Median-predicted motion fields".
The predictors that use the last M-frame's field (its vector at the same cell, alone or in a
median with spatial neighbours) count only M-frames that follow one of the same grid, against
the median predictor on the same frames (BENCHMARKS.md "Format 14.0").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gsvc_cli.codec.bitstream.container import GsvcReader
from gsvc_cli.codec.bitstream.entropy import EntropyWriter
from gsvc_cli.codec.bitstream.frame_coding import CodingMemory, decode_values, encode_picture_frame
from gsvc_cli.codec.bitstream.motion_vectors import (
    MotionVectors,
    median3,
    median_predictor,
    moving_cells,
    neighbour_predictor,
)
from gsvc_cli.codec.bitstream.quantise import QuantisedSplats


def _shifted(v: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """v[r + dy, c + dx] clamped to the grid."""
    gh, gw = v.shape[:2]
    rows = np.clip(np.arange(gh) + dy, 0, gh - 1)
    cols = np.clip(np.arange(gw) + dx, 0, gw - 1)
    return v[rows][:, cols]


PREDICTORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "left": lambda v: _shifted(v, 0, -1),
    "median(left, up, up-right)": lambda v: median3(_shifted(v, 0, -1), _shifted(v, -1, 0),
                                                    _shifted(v, -1, 1)),
    "median(up-left, up, up-right)": lambda v: median3(_shifted(v, -1, -1), _shifted(v, -1, 0),
                                                       _shifted(v, -1, 1)),
    "up": lambda v: _shifted(v, -1, 0),
}


def moving_bits(vectors: np.ndarray, predictor: Callable[[np.ndarray], np.ndarray]) -> int:
    """Bits of mv.x and mv.y of the moving cells (those off the first row and column take
    `predictor`, the others their left or upper neighbour, as every coding does)."""
    left = neighbour_predictor(vectors)
    moving = (vectors != left).any(-1)
    pred = left.copy()
    pred[1:, 1:] = predictor(vectors)[1:, 1:]
    return residual_bits((vectors - pred)[moving])


def residual_bits(res: np.ndarray) -> int:
    """Bits of residuals [K, 2] as streams mv.x and mv.y (y split by whether x is 0)."""
    if not len(res):
        return 0
    writer = EntropyWriter()
    writer.add("mv.x", res[:, 0])
    writer.add("mv.y", res[:, 1], (res[:, 0] != 0).astype(np.int64), 2)
    return 8 * len(writer.finish())


TEMPORAL: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "median(left, up, up-right)": lambda v, last: median_predictor(v),
    "last field's vector": lambda v, last: last,
    "median(left, up, last field's)": lambda v, last: median3(_shifted(v, 0, -1), _shifted(v, -1, 0), last),
    "median(spatial median, left, last field's)": lambda v, last: median3(median_predictor(v),
                                                                          _shifted(v, 0, -1), last),
}


def temporal_bits(vectors: np.ndarray, predictor: np.ndarray) -> int:
    """Bits of mv.x and mv.y of the moving cells coded against `predictor` ([gh, gw, 2])."""
    return residual_bits((vectors - predictor)[moving_cells(vectors)])


def in_units(last: MotionVectors, per_pixel: int) -> np.ndarray:
    """The last field's vectors in 1/per_pixel pixels (rounded down from finer units)."""
    if per_pixel >= last.per_pixel:
        return last.vectors * (per_pixel // last.per_pixel)
    return last.vectors // (last.per_pixel // per_pixel)


def measure(path: Path) -> None:
    old = new = total = 0
    by_predictor = dict.fromkeys(PREDICTORS, 0)
    by_temporal = dict.fromkeys(TEMPORAL, 0)
    last: MotionVectors | None = None
    prev, decode_memory, encode_memory = None, None, None
    with GsvcReader(path) as gsvc:
        for _, record in gsvc.frames():
            assert record is not None
            frame = decode_values(record.payload, prev, memory=decode_memory)
            decode_memory = frame.memory
            total += 8 * len(record.payload)
            if frame.frame_type != "M":
                prev = frame.values if frame.frame_type in ("I", "P") else prev
                encode_memory = None if frame.frame_type == "I" else encode_memory
                last = None if frame.frame_type == "I" else last
                continue
            assert frame.motion is not None
            residual = (QuantisedSplats.from_array(frame.values), frame.steps) if len(frame.values) else None
            coded = encode_picture_frame(frame.motion, residual, memory=encode_memory or CodingMemory())
            encode_memory = coded.memory
            old += 8 * len(record.payload)
            new += 8 * len(coded.payload)
            for name, predictor in PREDICTORS.items():
                by_predictor[name] += moving_bits(frame.motion.vectors, predictor)
            vectors = frame.motion.vectors
            if last is not None and last.vectors.shape == vectors.shape:
                earlier = in_units(last, frame.motion.per_pixel)
                for name, make in TEMPORAL.items():
                    by_temporal[name] += temporal_bits(vectors, make(vectors, earlier))
            last = frame.motion
    print(f"{path.name}: M-frames {old} bits, re-coded {new} ({100 * (new / max(old, 1) - 1):+.2f}%; "
          f"{100 * (new - old) / max(total, 1):+.2f}% of the file)")
    base = by_predictor["left"]
    for name, bits in by_predictor.items():
        print(f"  moving cells by {name:30s} {bits:9d} bits ({100 * (bits / max(base, 1) - 1):+.1f}%)")
    base = by_temporal["median(left, up, up-right)"]
    print("  M-frames after one of the same grid:")
    for name, bits in by_temporal.items():
        print(f"    moving cells by {name:42s} {bits:9d} bits ({100 * (bits / max(base, 1) - 1):+.1f}%)")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        measure(Path(arg))

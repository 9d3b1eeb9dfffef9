"""What temporal contexts (the same splat's previous P-frame decision) would save in P-frames.

Usage: PYTHONPATH=. python bench/temporal_contexts.py FILE.gsvc [FILE.gsvc ...]

Issue #9 item 6, measured before changing the format. Each file's frames are decoded with this
tree's frame coder (`decode_values`); for every P-frame the deletion flags, change classes and
differences are recomputed from the decoded integers as the encoder computes them (survivors vs
the motion-compensated previous frame), and the streams the candidates touch (deleted, change,
d0..d7) are costed with the real model selection of `EntropyWriter` (model block + ideal
range-coded bits), as format 3.0 codes them and with contexts from each splat's history. The
history is carried from frame to frame in the decoder's splat order and reset at an I-frame:
  state: 0 = from the I-frame (every splat of the first P-frame's reference), 1 = new in the
         previous P-frame, 2 + c = survived the previous P-frame with change class c.
  last:  its 8 differences in the previous P-frame (zero when unchanged, new or from the I-frame).
Temporal contexts of a difference stream multiply the existing ones (`_delta_contexts`).
Everything is integer (ranks via `rank_contexts`), as a format change would need.

Prints per file, in bits per splat of the P-frames' splats (all splats, new ones included):
  - per group and candidate, the cost as coded (a SPLIT model is used only where it is cheaper,
    exactly as the writer decides) and, in brackets, a "free-model" figure: ideal bits with one
    model per bucket whose description costs nothing (no linear prediction there);
  - the same free-model figure with the buckets shuffled across splats (`_shuffled`): the part of
    the free-model gain that is only over-fitting one model per bucket;
  - "pooled": each stream of all the file's P-frames coded as one, so one model set serves ~10x
    the splats of a frame (what larger frames would see, where model blocks weigh less);
  - a summary table, before -> after with the best candidate per group, as coded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gsvc_cli.codec.bitstream.container import GsvcReader  # noqa: E402
from gsvc_cli.codec.bitstream.entropy import (  # noqa: E402
    ByteReader,
    EntropyReader,
    EntropyWriter,
    _choose_model,
)
from gsvc_cli.codec.bitstream.frame_coding import (  # noqa: E402
    _DELTA_BUCKETS,
    _DELTA_GROUPS,
    _DELTA_SOURCES,
    _add_predicted,
    _delta_contexts,
    _read_motion,
    decode_values,
    rank_contexts,
)
from gsvc_cli.codec.bitstream.motion_vectors import MotionVectors  # noqa: E402

STATE_INTRA = 0
STATE_NEW = 1
STATE_KEPT = 2  # + change class (0..7)
N_STATES = 10
GROUP_OF_COLUMN = {c: (g, bit) for g, first, end, bit in _DELTA_GROUPS for c in range(first, end)}


class PFrame:
    """One P-frame's coded decisions, recomputed from decoded integers, plus the history before it."""

    def __init__(self, deleted: np.ndarray, change: np.ndarray, deltas: np.ndarray, payload_bits: int,
                 n_cur: int, state: np.ndarray, last: np.ndarray) -> None:
        self.deleted = deleted
        self.change = change
        self.deltas = deltas
        self.payload_bits = payload_bits
        self.n_cur = n_cur
        self.state = state  # [n_prev] history of the previous frame's splats
        self.last = last  # [n_prev, 8]


def _motion(payload: bytes, what: str) -> MotionVectors | None:
    """The P-frame's motion field (header and first streams of the payload, as the decoder reads)."""
    reader = ByteReader(payload, what)
    reader.u8()
    reader.varint()
    reader.varint()
    gw, gh = reader.varint(), reader.varint()
    cell = reader.varint() if gw else 0
    return _read_motion(EntropyReader(reader.remaining(), what), gw, gh, cell, what)


def load(path: Path) -> list[PFrame]:
    """Decode `path` and return its P-frames with each splat's history (decoder order)."""
    out: list[PFrame] = []
    prev: np.ndarray | None = None
    state = np.zeros(0, dtype=np.int64)
    last = np.zeros((0, 8), dtype=np.int64)
    memory = None
    with GsvcReader(path) as gsvc:
        for k, record in gsvc.frames():
            assert record is not None
            what = f"{path.name}: frame {k}"
            frame = decode_values(record.payload, prev if record.frame_type == "P" else None, what,
                                  memory=memory)
            memory = frame.memory  # M-frames may repeat models of the M-frames before them
            if frame.frame_type == "M":  # the picture moved: the splat state stays as it was
                continue
            values = frame.values
            if frame.frame_type == "I":
                state = np.full(len(values), STATE_INTRA, dtype=np.int64)
                last = np.zeros((len(values), 8), dtype=np.int64)
            else:
                assert prev is not None
                motion = _motion(record.payload, what)
                predicted = prev if motion is None else motion.predict(prev)
                kept = frame.kept
                deleted = np.ones(len(prev), dtype=np.int64)
                deleted[kept] = 0
                deltas = values[:len(kept)] - predicted[kept]
                change = np.zeros(len(kept), dtype=np.int64)
                for _, first, end, bit in _DELTA_GROUPS:
                    change |= np.where((deltas[:, first:end] != 0).any(axis=1), bit, 0)
                out.append(PFrame(deleted, change, deltas, 8 * len(record.payload), len(values),
                                  state, last))
                n_new = len(values) - len(kept)
                state = np.concatenate([STATE_KEPT + change, np.full(n_new, STATE_NEW, dtype=np.int64)])
                last = np.concatenate([deltas, np.zeros((n_new, 8), dtype=np.int64)])
            prev = values
    return out


# ----------------------------------------------------------------------------------------------
# candidate contexts: functions of the survivors' (or previous splats') history -> (buckets, n)

Ctx = tuple[np.ndarray, int] | None


def state4(state: np.ndarray) -> np.ndarray:
    """0 from the I-frame, 1 new last frame, 2 unchanged last frame, 3 changed last frame."""
    return np.where(state < STATE_KEPT, state, np.where(state == STATE_KEPT, 2, 3))


def changed_bit(state: np.ndarray, bit: int) -> np.ndarray:
    """1 if the splat survived the previous P-frame with group `bit` changed."""
    return ((state >= STATE_KEPT) & (((state - STATE_KEPT) & bit) != 0)).astype(np.int64)


def structure_candidates(f: PFrame) -> dict[str, tuple[Ctx, Ctx]]:
    """(deleted contexts over previous splats, change contexts over survivors) per candidate."""
    kept = np.flatnonzero(f.deleted == 0)
    s_prev, s_kept = f.state, f.state[kept]
    return {
        "none": (None, None),
        "state4": ((state4(s_prev), 4), (state4(s_kept), 4)),
        "state10": ((s_prev, N_STATES), (s_kept, N_STATES)),
        "state4/state10": ((state4(s_prev), 4), (s_kept, N_STATES)),
        "any-change2": (((s_prev > STATE_KEPT).astype(np.int64), 2),
                        ((s_kept > STATE_KEPT).astype(np.int64), 2)),
        "placebo-state10": ((_shuffled(s_prev), N_STATES), (_shuffled(s_kept), N_STATES)),
    }


def _shuffled(contexts: np.ndarray) -> np.ndarray:
    """The same buckets dealt to random splats: what the free-model bound gains from fitting one
    model per bucket alone, with no information in the context (its over-fitting bias)."""
    return np.random.default_rng(len(contexts)).permutation(contexts)


def cost_change_bits(f: PFrame, temporal: bool) -> float:
    """The change class as three binary streams (means, chol, colours flags), each flag with the
    flags of this splat coded before it as contexts and, if `temporal`, the same flag last frame
    (a stream layout of its own: cheap two-symbol models instead of one 8-symbol table per bucket).
    The `deleted` stream is coded as in format 3.0."""
    kept = np.flatnonzero(f.deleted == 0)
    state = f.state[kept]
    writer = EntropyWriter()
    writer.add("deleted", f.deleted)
    done = np.zeros(len(kept), dtype=np.int64)
    n_done = 1
    for bit in (1, 2, 4):
        flag = ((f.change & bit) != 0).astype(np.int64)
        ctx, n = done, n_done
        if temporal:
            ctx, n = ctx * 2 + changed_bit(state, bit), n * 2
        if n > 1:
            writer.add(f"change.{bit}", flag, ctx, n)
        else:
            writer.add(f"change.{bit}", flag)
        done, n_done = done * 2 + flag, n_done * 2
    return _stream_bits(writer)


def free_model_bits(values: np.ndarray, ctx: Ctx) -> float:
    """Ideal bits of `values` with one model per bucket whose description costs nothing (a bound:
    what the contexts could save if model blocks were free)."""
    if len(values) == 0:
        return 0.0
    if ctx is None:
        return _choose_model(values).ideal_bits
    return sum(_choose_model(values[ctx[0] == b]).ideal_bits for b in range(ctx[1]) if (ctx[0] == b).any())


def delta_candidates(f: PFrame, column: int, rows: np.ndarray) -> dict[str, Ctx]:
    """Temporal contexts of difference stream d{column} over the survivors `rows` of its group."""
    kept = np.flatnonzero(f.deleted == 0)[rows]
    group, bit = GROUP_OF_COLUMN[column]
    first, end = next((a, b) for g, a, b, _ in _DELTA_GROUPS if g == group)
    last = f.last[kept]
    state = f.state[kept]
    col_mag = np.abs(last[:, column])
    group_mag = np.abs(last[:, first:end]).sum(axis=1)
    return {
        "none": None,
        "changed2": (changed_bit(state, bit), 2),
        "state4": (state4(state), 4),
        "rank3|d_c|": (rank_contexts(col_mag, 3), 3),
        "rank4|d_c|": (rank_contexts(col_mag, 4), 4),
        "rank3|d_g|": (rank_contexts(group_mag, 3), 3),
        "zero+rank2|d_c|": (zero_or_rank(col_mag, 2), 3),
        "zero+rank3|d_g|": (zero_or_rank(group_mag, 3), 4),
        "placebo-zero+rank3|d_g|": (_shuffled(zero_or_rank(group_mag, 3)), 4),
    }


def zero_or_rank(keys: np.ndarray, n_buckets: int) -> np.ndarray:
    """0 for a zero key (no difference last frame), else 1 + its rank among the non-zero keys."""
    out = np.zeros(len(keys), dtype=np.int64)
    nonzero = keys != 0
    out[nonzero] = 1 + rank_contexts(keys[nonzero], n_buckets)
    return out


def _combine(base: Ctx, extra: Ctx) -> Ctx:
    """Product of the existing spatial-rank contexts and a temporal one (<= MAX_CONTEXTS buckets)."""
    if extra is None:
        return base
    if base is None:
        return extra
    return base[0] * extra[1] + extra[0], base[1] * extra[1]


def _stream_bits(writer: EntropyWriter) -> float:
    return sum(s.model_bits + s.ideal_bits for s in writer.stats)


def cost_structure(f: PFrame, deleted_ctx: Ctx, change_ctx: Ctx) -> float:
    """Bits of the `deleted` and `change` streams under the given contexts."""
    writer = EntropyWriter()
    for name, values, ctx in (("deleted", f.deleted, deleted_ctx), ("change", f.change, change_ctx)):
        if ctx is None:
            writer.add(name, values)
        else:
            writer.add(name, values, ctx[0], ctx[1])
    return _stream_bits(writer)


def cost_delta_linear(f: PFrame, column: int) -> float:
    """Bits of d{column} with the splat's last difference in that column as one more source of the
    linear prediction (`_add_predicted`: least-squares coefficient per frame, kept only if it pays)."""
    group, bit = GROUP_OF_COLUMN[column]
    rows = np.flatnonzero((f.change & bit) != 0)
    deltas = f.deltas[rows]
    last = f.last[np.flatnonzero(f.deleted == 0)[rows], column]
    base_ctx = _delta_contexts(column, deltas)
    contexts, n = (base_ctx, _DELTA_BUCKETS[column]) if base_ctx is not None else (None, 0)
    sources = np.concatenate([deltas[:, list(_DELTA_SOURCES.get(column, ()))], last[:, None]], axis=1)
    writer = EntropyWriter()
    _add_predicted(writer, f"d{column}", deltas[:, column], sources, contexts, n)
    return _stream_bits(writer)


def cost_delta(f: PFrame, column: int, pick: Callable[[PFrame, int, np.ndarray], Ctx],
               shift: int | None = None) -> tuple[float, float]:
    """Bits of stream d{column} (with its `.pred` if any) under existing x temporal contexts:
    as the writer codes it, and the free-model bound (`free_model_bits`, no linear prediction).
    With `shift`, the differences are first predicted by the splat's last ones, floor(last / 2**shift)
    (all columns of the group, so the existing contexts and linear prediction see residuals)."""
    group, bit = GROUP_OF_COLUMN[column]
    rows = np.flatnonzero((f.change & bit) != 0)
    deltas = f.deltas[rows]
    if shift is not None:
        deltas = deltas - (f.last[np.flatnonzero(f.deleted == 0)[rows]] >> shift)
    base_ctx = _delta_contexts(column, deltas)
    base = (base_ctx, _DELTA_BUCKETS[column]) if base_ctx is not None else None
    ctx = _combine(base, pick(f, column, rows))
    contexts, n = (None, 0) if ctx is None else ctx
    writer = EntropyWriter()
    if column in _DELTA_SOURCES:
        sources = deltas[:, list(_DELTA_SOURCES[column])]
        _add_predicted(writer, f"d{column}", deltas[:, column], sources, contexts, n)
    else:
        writer.add(f"d{column}", deltas[:, column], contexts, n)
    return _stream_bits(writer), free_model_bits(deltas[:, column], ctx)


def _cost_pooled(name: str, values: list[np.ndarray], ctxs: list[Ctx],
                 sources: list[np.ndarray] | None) -> float:
    """Bits of one stream gathered over all frames, coded once (one model set for the clip)."""
    writer = EntropyWriter()
    v = np.concatenate(values)
    contexts, n = (None, 0) if ctxs[0] is None else (np.concatenate([c[0] for c in ctxs]), ctxs[0][1])
    if sources is not None:
        _add_predicted(writer, name, v, np.concatenate(sources), contexts, n)
    else:
        writer.add(name, v, contexts, n)
    return _stream_bits(writer)


def pooled_costs(frames: list[PFrame]) -> dict[str, tuple[float, float]]:
    """Per group, bits without and with the best temporal contexts when each stream of all the
    clip's P-frames is coded as one (one model set for ~10x the splats of a frame: what larger
    frames would see, where model blocks weigh less per splat)."""
    out: dict[str, tuple[float, float]] = {}
    structure = {}
    for name in ("none", "state4", "state10", "state4/state10"):
        cands = [structure_candidates(f)[name] for f in frames]
        structure[name] = _cost_pooled("deleted", [f.deleted for f in frames], [c[0] for c in cands], None) \
            + _cost_pooled("change", [f.change for f in frames], [c[1] for c in cands], None)
    out["structure"] = (structure["none"], min(structure.values()))
    for group, first, end, bit in _DELTA_GROUPS:
        best = {}
        for name in ("none", "changed2", "rank3|d_c|", "zero+rank2|d_c|", "zero+rank3|d_g|"):
            total = 0.0
            for column in range(first, end):
                values, ctxs, sources = [], [], []
                for f in frames:
                    rows = np.flatnonzero((f.change & bit) != 0)
                    deltas = f.deltas[rows]
                    base_ctx = _delta_contexts(column, deltas)
                    base = (base_ctx, _DELTA_BUCKETS[column]) if base_ctx is not None else None
                    ctxs.append(_combine(base, delta_candidates(f, column, rows)[name]))
                    values.append(deltas[:, column])
                    if column in _DELTA_SOURCES:
                        sources.append(deltas[:, list(_DELTA_SOURCES[column])])
                total += _cost_pooled(f"d{column}", values, ctxs, sources or None)
            best[name] = total
        out[group] = (best["none"], min(best.values()))
    return out


def structure_costs(frames: list[PFrame]) -> tuple[dict[str, float], dict[str, float]]:
    """Summed bits of deleted + change per candidate: as coded, and the free-model bound."""
    real: dict[str, float] = {}
    free: dict[str, float] = {}
    for f in frames:
        for name, (d_ctx, c_ctx) in structure_candidates(f).items():
            real[name] = real.get(name, 0.0) + cost_structure(f, d_ctx, c_ctx)
            free[name] = free.get(name, 0.0) + free_model_bits(f.deleted, d_ctx) \
                + free_model_bits(f.change, c_ctx)
        for name, temporal in (("flags3", False), ("flags3+same-flag", True)):
            real[name] = real.get(name, 0.0) + cost_change_bits(f, temporal)
        # the class predicted by last frame's (XOR: a repeated decision codes as 0; no extra model)
        state = f.state[f.deleted == 0]
        last_class = np.where(state >= STATE_KEPT, state - STATE_KEPT, 0)
        writer = EntropyWriter()
        writer.add("deleted", f.deleted)
        writer.add("change", f.change ^ last_class)
        real["xor-last-class"] = real.get("xor-last-class", 0.0) + _stream_bits(writer)
    return real, free


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    group_names = {"means": (0, 1), "chol": (2, 3, 4), "colors": (5, 6, 7)}
    summary = []
    for path in args.files:
        frames = load(path)
        n = sum(f.n_cur for f in frames)
        payload = sum(f.payload_bits for f in frames)
        print(f"\n## {path.name}: {len(frames)} P-frames, {n} splats, {payload / n:.2f} bits/splat "
              f"(payload); bits per splat of the P-frames' splats, as coded [free-model bound]")
        real, free = structure_costs(frames)
        print("structure (deleted + change): " + ", ".join(
            f"{k} {v / n:.3f}" + (f" [{free[k] / n:.3f}]" if k in free else "") for k, v in real.items()))
        real.pop("placebo-state10")
        best = {"structure": (real["none"] / n, min(real.values()) / n)}
        bound = {"structure": (free["none"] / n, free["state10"] / n)}
        placebo = {"structure": (free["none"] / n, free.pop("placebo-state10") / n)}
        dnames = list(delta_candidates(frames[0], 0, np.arange(0)).keys())
        for group, columns in group_names.items():
            cost = {(name, c): np.sum([cost_delta(f, c, lambda f, c, r, k=name: delta_candidates(f, c, r)[k])
                                       for f in frames], axis=0) / n for name in dnames for c in columns}
            for label, shift in (("minus-last", 0), ("minus-half-last", 1)):
                for c in columns:
                    cost[label, c] = np.sum([cost_delta(f, c, lambda f, c, r: None, shift) for f in frames],
                                            axis=0) / n
                    cost["lin-last", c] = np.array([sum(cost_delta_linear(f, c) for f in frames) / n, 0.0])
            dnames_all = [*dnames, "minus-last", "minus-half-last", "lin-last"]
            per = {name: sum(cost[name, c][0] for c in columns) for name in dnames_all}
            per_free = {name: sum(cost[name, c][1] for c in columns) for name in dnames}
            # best candidate per column, chosen on this clip (upper bound of one fixed choice)
            real_names = [k for k in dnames_all if not k.startswith("placebo")]
            best_col = sum(min(cost[name, c][0] for name in real_names) for c in columns)
            print(f"{group}: " + ", ".join(f"{k} {v:.3f}" + (f" [{per_free[k]:.3f}]" if k in per_free else "")
                                           for k, v in per.items())
                  + f"; best per column {best_col:.3f}")
            best[group] = (per["none"], min(per["none"], best_col))
            bound[group] = (per_free["none"], per_free["zero+rank3|d_g|"])
            placebo[group] = (per_free["none"], per_free["placebo-zero+rank3|d_g|"])
        total = payload / n
        after = total - sum(b - a for b, a in best.values())
        after_free = total - sum(b - a for b, a in bound.values())
        after_placebo = total - sum(b - a for b, a in placebo.values())
        print(f"P-frame bits/splat {total:.3f} -> best candidates {after:.3f} "
              f"({100 * (after / total - 1):+.2f} %); free models, state10 + zero+rank3|d_g|: "
              f"{after_free:.3f} ({100 * (after_free / total - 1):+.2f} %), the same buckets shuffled: "
              f"{after_placebo:.3f} ({100 * (after_placebo / total - 1):+.2f} %)")
        pooled = pooled_costs(frames)
        after_pooled = total - sum(b - a for b, a in pooled.values()) / n
        print("pooled (one model set per stream for all P-frames): " + ", ".join(
            f"{g} {b / n:.3f} -> {a / n:.3f}" for g, (b, a) in pooled.items())
            + f"; P total {total:.3f} -> {after_pooled:.3f} ({100 * (after_pooled / total - 1):+.2f} %)")
        summary.append((path.stem, best, total, after, after_free, after_placebo))
    print("\nbest candidate per group, as coded (before → after); free-model bound of the total with "
          "real and with shuffled contexts")
    print("| file | structure | means | chol | colors | P total | free models | shuffled |")
    print("|---|---|---|---|---|---|---|---|")
    for stem, best, total, after, after_free, after_placebo in summary:
        cells = " | ".join(f"{best[g][0]:.2f} → {best[g][1]:.2f}"
                           for g in ("structure", "means", "chol", "colors"))
        print(f"| {stem} | {cells} | {total:.2f} → {after:.2f} ({100 * (after / total - 1):+.1f} %) "
              f"| {100 * (after_free / total - 1):+.1f} % | {100 * (after_placebo / total - 1):+.1f} % |")


if __name__ == "__main__":
    main()

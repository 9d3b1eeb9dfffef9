"""Frame payloads: I and P round trips are exact, unchanged splats are nearly free, bad input fails."""

from __future__ import annotations

import pytest
import torch
from helpers import realistic_splats

from gsvc_cli.codec.bitstream.frame_coding import (
    RAW_BITS_PER_SPLAT,
    decode_frame,
    encode_inter_frame,
    encode_intra_frame,
)
from gsvc_cli.codec.bitstream.quantise import QuantisedSplats, QuantSteps, dequantise, quantise
from gsvc_cli.codec.splats import Splats
from gsvc_cli.errors import FormatError, GsvcError

STEPS = QuantSteps.default()


def low_motion(s: Splats, seed: int, moving: float = 0.3) -> Splats:
    """A fraction of splats drift by ~0.3 px and change colour slightly; the rest stay put."""
    g = torch.Generator().manual_seed(seed)
    n = len(s)
    move = (torch.rand(n, 1, generator=g) < moving).float()
    recolour = (torch.rand(n, 1, generator=g) < moving).float()
    return Splats(s.means + move * torch.randn(n, 2, generator=g) * 0.3, s.chol.clone(),
                  s.colors + recolour * torch.randn(n, 3, generator=g) * 0.01)


def coded_i_frame(n: int = 3000, seed: int = 0) -> QuantisedSplats:
    q = quantise(realistic_splats(n, 320, 240, seed), STEPS)
    coded = encode_intra_frame(q, STEPS)
    return q.select(coded.order)


def test_i_frame_round_trip_exact_with_order():
    q = quantise(realistic_splats(3000, 320, 240, 0), STEPS)
    coded = encode_intra_frame(q, STEPS)
    assert sorted(coded.order.tolist()) == list(range(len(q)))
    frame = decode_frame(coded.payload, None)
    assert frame.frame_type == "I" and frame.steps == STEPS
    assert frame.splats.equal(q.select(coded.order))
    stats = frame.stats
    assert stats.payload_bits == 8 * len(coded.payload) == coded.stats.payload_bits
    groups = stats.bits_by_group()
    assert sum(groups.values()) == pytest.approx(stats.payload_bits)
    assert 0 <= groups["side"] < 400 and groups["structure"] == 0
    per_splat = stats.bits_per_splat()
    assert per_splat["raw"] == RAW_BITS_PER_SPLAT and per_splat["total"] < 0.25 * RAW_BITS_PER_SPLAT


def test_p_frame_round_trip_with_deletions_changes_and_new_splats():
    prev = coded_i_frame()
    g = torch.Generator().manual_seed(7)
    kept = torch.nonzero(torch.rand(len(prev), generator=g) > 0.1).flatten()
    survivors = low_motion(dequantise(prev, STEPS), 1).select(kept)
    survivors.chol[::50] *= 1.3  # some shape changes too
    new = realistic_splats(250, 320, 240, 9)
    cur = quantise(Splats.cat([survivors, new]), STEPS)
    coded = encode_inter_frame(cur, prev, kept)
    assert coded.order[: len(kept)].tolist() == list(range(len(kept)))
    frame = decode_frame(coded.payload, prev)
    assert frame.frame_type == "P" and frame.steps is None
    assert frame.splats.equal(cur.select(coded.order))
    assert torch.equal(frame.kept, kept)
    s = frame.stats
    assert (s.n_kept, s.n_new, s.n_deleted) == (len(kept), 250, len(prev) - len(kept))
    assert sum(s.bits_by_group().values()) == pytest.approx(s.payload_bits)


def test_gop_of_p_frames_has_no_drift():
    """Each P-frame predicts from the previous *decoded* frame; decoding the chain reproduces it."""
    prev = coded_i_frame(1500, 3)
    chain = [prev]
    payloads = []
    for t in range(4):
        cur = quantise(low_motion(dequantise(prev, STEPS), 10 + t), STEPS)
        coded = encode_inter_frame(cur, prev, torch.arange(len(prev)))
        payloads.append(coded.payload)
        prev = cur.select(coded.order)
        chain.append(prev)
    decoded = chain[0]
    for payload, expected in zip(payloads, chain[1:], strict=True):
        decoded = decode_frame(payload, decoded).splats
        assert decoded.equal(expected)


def test_unchanged_splats_are_nearly_free():
    prev = coded_i_frame(5000, 4)
    coded = encode_inter_frame(prev, prev, torch.arange(len(prev)))
    assert coded.stats.payload_bits / len(prev) < 0.05
    # 95 % unchanged, 5 % moved and recoloured: the flags that say which is which (structure)
    # cost less than half a bit per unchanged splat, and the deltas are paid by the moved ones only
    moved = quantise(low_motion(dequantise(prev, STEPS), 5, moving=1.0), STEPS)
    mixed = QuantisedSplats.cat([prev.select(torch.arange(4750)), moved.select(torch.arange(4750, 5000))])
    groups = encode_inter_frame(mixed, prev, torch.arange(5000)).stats.bits_by_group()
    assert groups["structure"] + groups["side"] < 0.5 * 4750
    all_moved = encode_inter_frame(moved, prev, torch.arange(5000)).stats.bits_by_group()
    assert groups["means"] + groups["colors"] < 0.1 * (all_moved["means"] + all_moved["colors"])


def test_low_motion_p_frame_is_far_cheaper_than_i_frame():
    prev = coded_i_frame(5000, 5)
    i_bits = encode_intra_frame(prev, STEPS).stats.payload_bits
    cur = quantise(low_motion(dequantise(prev, STEPS), 6), STEPS)
    p_bits = encode_inter_frame(cur, prev, torch.arange(len(prev))).stats.payload_bits
    assert p_bits < i_bits / 4


def test_bad_payloads_and_misuse():
    prev = coded_i_frame(500, 6)
    cur = quantise(low_motion(dequantise(prev, STEPS), 7), STEPS)
    coded = encode_inter_frame(cur, prev, torch.arange(len(prev)))
    with pytest.raises(FormatError, match="without a previous frame"):
        decode_frame(coded.payload, None, what="x.gsvc: frame 3")
    with pytest.raises(FormatError, match="x.gsvc: frame 3"):
        decode_frame(coded.payload, prev.select(torch.arange(10)), what="x.gsvc: frame 3")
    with pytest.raises(FormatError):
        decode_frame(coded.payload[:5], prev)
    with pytest.raises(FormatError, match="record says I-frame"):
        decode_frame(coded.payload, prev, expected_type="I")
    with pytest.raises(FormatError, match="more than a frame may hold"):
        decode_frame(b"\x00\xff\xff\xff\xff\x0f", None)
    with pytest.raises(FormatError, match="unknown frame type"):
        decode_frame(b"\x07" + coded.payload[1:], prev)
    intra = encode_intra_frame(prev, STEPS).payload
    with pytest.raises(FormatError):
        decode_frame(intra[:20], None)
    with pytest.raises(GsvcError, match="increasing"):
        encode_inter_frame(cur, prev, torch.tensor([3, 2, 1]))
    with pytest.raises(GsvcError):
        encode_inter_frame(cur.select(torch.arange(5)), prev, torch.arange(10))


def test_empty_and_single_splat_frames():
    empty = QuantisedSplats.empty()
    coded = encode_intra_frame(empty, STEPS)
    assert len(decode_frame(coded.payload, None).splats) == 0
    one = coded_i_frame(1, 8)
    assert decode_frame(encode_intra_frame(one, STEPS).payload, None).splats.equal(one)
    p = encode_inter_frame(empty, one, torch.zeros(0, dtype=torch.int64))
    assert len(decode_frame(p.payload, one).splats) == 0
    p = encode_inter_frame(one, empty, torch.zeros(0, dtype=torch.int64))
    assert decode_frame(p.payload, empty).splats.equal(one)

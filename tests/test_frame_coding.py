"""Frame payloads: I and P round trips are exact, unchanged splats are nearly free, bad input fails."""

from __future__ import annotations

import contextlib

import numpy as np
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


def test_context_coded_streams_round_trip_on_correlated_attributes():
    """Chroma amplitudes that grow with each other and elongated, sheared splats: the context
    buckets (rank of |c1 - median|, of |l1 - l3|) pay for their models and decode exactly."""
    g = torch.Generator().manual_seed(11)
    s = realistic_splats(4000, 320, 240, 12)
    spread = torch.rand(4000, 1, generator=g) * 0.2
    colors = torch.cat([s.colors[:, :1], torch.randn(4000, 2, generator=g) * spread], 1)
    q = quantise(Splats(s.means, s.chol, colors), STEPS)
    coded = encode_intra_frame(q, STEPS)
    frame = decode_frame(coded.payload, None)
    assert frame.splats.equal(q.select(coded.order))
    by_name = {st.name: st for st in coded.stats.streams}
    assert [st.name for st in frame.stats.streams] == list(by_name)
    assert frame.stats.bits_by_group() == pytest.approx(coded.stats.bits_by_group())
    # the split model for c2 is cheaper than one model over all of c2
    from gsvc_cli.codec.bitstream.entropy import EntropyWriter
    c2 = q.select(coded.order).as_array()[:, 7]
    single = EntropyWriter().add("c2", c2)
    assert by_name["c2"].model_bits + by_name["c2"].ideal_bits < single.model_bits + single.ideal_bits


def test_corrupt_payloads_raise_format_error_never_crash():
    """Flipped bytes and truncations of real I and P payloads: FormatError or a valid frame."""
    prev = coded_i_frame(400, 13)
    intra = encode_intra_frame(prev, STEPS).payload
    cur = quantise(low_motion(dequantise(prev, STEPS), 14), STEPS)
    kept = torch.arange(0, len(prev), 2)
    cur = QuantisedSplats.cat([cur.select(kept), cur.select(torch.arange(30))])
    inter = encode_inter_frame(cur, prev, kept).payload
    rng = torch.Generator().manual_seed(15)
    for payload, base in ((intra, None), (inter, prev)):
        for cut in (1, 2, 10, len(payload) - 3):  # cut inside the header, models or a body word
            with pytest.raises(FormatError):
                decode_frame(payload[:cut], base)
        for _ in range(60):
            data = bytearray(payload)
            at = int(torch.randint(1, len(data), (1,), generator=rng))
            data[at] ^= 1 << int(torch.randint(0, 8, (1,), generator=rng))
            with contextlib.suppress(FormatError):
                decode_frame(bytes(data), base)


def test_linear_prediction_of_colour_channels_round_trips_and_pays():
    """Splat amplitudes scale all three channels together: c1, c2 predicted from c0 (and c1)
    cost far less than coded alone; a P-frame whose colour differences share a factor too."""
    from gsvc_cli.codec.bitstream.entropy import EntropyReader, EntropyWriter
    from gsvc_cli.codec.bitstream.frame_coding import linear_prediction

    g = torch.Generator().manual_seed(21)
    s = realistic_splats(3000, 320, 240, 22)
    amplitude = torch.randn(3000, 1, generator=g) * 0.3
    colors = amplitude * torch.tensor([[1.0, 0.5, -0.4]]) + torch.randn(3000, 3, generator=g) * 0.01
    q = quantise(Splats(s.means, s.chol, colors), STEPS)
    coded = encode_intra_frame(q, STEPS)
    decoded = decode_frame(coded.payload, None)
    assert decoded.splats.equal(q.select(coded.order))
    streams = {st.name: st for st in coded.stats.streams}
    assert "c2.pred" in streams and streams["c2.pred"].model_bits > 16  # non-zero coefficients
    c2 = q.select(coded.order).as_array()[:, 7]
    alone = EntropyWriter().add("c2", c2)
    assert streams["c2"].ideal_bits < 0.7 * alone.ideal_bits
    # a P-frame of 40 splats: too few for coefficients, so no .pred streams at all
    small = q.select(coded.order).select(torch.arange(40))
    p = encode_inter_frame(quantise(low_motion(dequantise(small, STEPS), 23, moving=1.0), STEPS), small,
                           torch.arange(40))
    assert not any(st.name.endswith(".pred") for st in p.stats.streams)
    assert decode_frame(p.payload, small).splats.equal(
        quantise(low_motion(dequantise(small, STEPS), 23, moving=1.0), STEPS).select(p.order))
    # the fixed-point prediction is floor((a . src + b) / 2**16), exact for large values too
    src = np.array([[2**29 - 1, -(2**29)], [-5, 7]], dtype=np.int64)
    params = np.array([2**24, -(2**24), 2**56], dtype=np.int64)
    expected = [(2**24 * (2**29 - 1) + 2**24 * 2**29 + 2**56) >> 16,
                (2**24 * -5 - 2**24 * 7 + 2**56) >> 16]
    assert linear_prediction(src, params).tolist() == expected
    # coefficients out of range are a corrupt payload
    writer = EntropyWriter()
    writer.add("c1.pred", np.array([2**25, 0]))
    writer.add("c1", np.zeros(100, dtype=np.int64))
    from gsvc_cli.codec.bitstream.frame_coding import _read_predicted
    with pytest.raises(FormatError, match="coefficients"):
        _read_predicted(EntropyReader(writer.finish()), "c1", 100, np.zeros((100, 1), dtype=np.int64),
                        None, 0)

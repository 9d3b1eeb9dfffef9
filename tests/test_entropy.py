"""Entropy coding: exact round trips, integer-only tables, costs near the entropy, corrupt input."""

from __future__ import annotations

import hashlib

import constriction
import numpy as np
import pytest

from gsvc_cli.codec.bitstream import entropy
from gsvc_cli.codec.bitstream.entropy import (
    KIND_BINARY,
    KIND_CLASSES,
    KIND_LADDER,
    KIND_REPEAT,
    KIND_SKEW,
    KIND_SPLIT,
    TOTAL,
    ByteReader,
    EntropyReader,
    EntropyWriter,
    _categorical,
    binary_freqs,
    frequency_table,
    ladder_decay,
    laplace_freqs,
    put_varint,
    skew_freqs,
    unzigzag,
    zigzag,
)
from gsvc_cli.errors import FormatError


def round_trip(streams: list[np.ndarray]) -> tuple[bytes, EntropyWriter, EntropyReader]:
    writer = EntropyWriter()
    for k, s in enumerate(streams):
        writer.add(f"s{k}", s)
    data = writer.finish()
    reader = EntropyReader(data)
    for k, s in enumerate(streams):
        np.testing.assert_array_equal(reader.read(len(s), f"s{k}"), s)
    reader.check_consumed()
    return data, writer, reader


def test_streams_of_every_shape_round_trip_exactly():
    rng = np.random.default_rng(0)
    streams = [
        rng.laplace(0, 3, 5000).round().astype(np.int64),            # deltas
        rng.integers(-10, 15400, 4000),                                # positions (wide, flat)
        np.zeros(300, dtype=np.int64),                                 # unchanged: constant
        np.array([7]),                                                 # a single value
        np.array([], dtype=np.int64),                                  # nothing
        rng.integers(-(2**29), 2**29, 200),                            # huge range: split low bits
        rng.normal(40, 6, 3000).round().astype(np.int64),             # peaked: histogram candidate
        np.array([0, 1] * 50),                                         # binary flags
        np.array([-5, 70000]),                                         # two far apart values
    ]
    data, writer, reader = round_trip(streams)
    # the decoder's accounting equals the encoder's, stream by stream
    assert [(s.count, s.model_bits) for s in writer.stats] == [(s.count, s.model_bits) for s in reader.stats]
    for a, b in zip(writer.stats, reader.stats, strict=True):
        assert a.ideal_bits == pytest.approx(b.ideal_bits)
    total_ideal = sum(s.model_bits + s.ideal_bits for s in writer.stats)
    assert total_ideal <= 8 * len(data) <= total_ideal + 8 * 12


def test_costs_are_close_to_the_entropy():
    rng = np.random.default_rng(1)
    b = 3.0
    deltas = rng.laplace(0, b, 20000).round().astype(np.int64)
    _, writer, _ = round_trip([deltas])
    counts = np.bincount(deltas - deltas.min())
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    per_symbol = (writer.stats[0].ideal_bits + writer.stats[0].model_bits) / len(deltas)
    assert entropy <= per_symbol <= entropy + 0.05
    _, writer, _ = round_trip([np.zeros(20000, dtype=np.int64)])
    assert writer.stats[0].ideal_bits == 0 and writer.stats[0].model_bits <= 16


def test_tables_are_exact_integers_summing_to_total():
    f = laplace_freqs(1000, 400, 60000)
    assert f.dtype == np.int64 and f.sum() == TOTAL and f.min() >= 1 and f.argmax() == 400
    assert f[399] == f[401]  # symmetric about the centre
    flat = laplace_freqs(17, 3, 65536)
    assert flat.sum() == TOTAL and flat.max() - flat.min() <= 17
    g = frequency_table(np.array([0, 5, 0, 1]))
    assert g.sum() == TOTAL and (g >= 1).all() and g.argmax() == 1
    # pinned values: any change to the table arithmetic breaks every existing file
    # FORMAT.md by hand: weights 2**32 * (1/2)**|k-2| = 2**30 * (1, 2, 4, 2, 1), W = 10 * 2**30
    free = TOTAL - 5
    expected = [1 + (2**30 * m * free) // (10 * 2**30) for m in (1, 2, 4, 2, 1)]
    expected[2] += TOTAL - sum(expected)
    assert laplace_freqs(5, 2, 32768).tolist() == expected


def test_constriction_codes_our_table_exactly():
    """constriction must use our integer table as is: a frequency-1 symbol costs 24 bits."""
    freqs = np.array([1, TOTAL - 3, 1, 1], dtype=np.int64)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(np.full(300, 2, dtype=np.int32), _categorical(freqs))
    assert 300 * 24 <= encoder.num_bits() <= 300 * 24 + 64
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(np.full(100000, 1, dtype=np.int32), _categorical(freqs))
    assert encoder.num_bits() <= 64  # 3/2**24 of a bit each


def test_varints_and_zigzag():
    for v in (0, 1, -1, 63, -64, 2**40, -(2**40)):
        assert unzigzag(zigzag(v)) == v
    out = bytearray()
    for v in (0, 127, 128, 300, 2**35):
        put_varint(out, v)
    r = ByteReader(bytes(out))
    assert [r.varint() for _ in range(5)] == [0, 127, 128, 300, 2**35]
    with pytest.raises(FormatError, match="truncated"):
        r.u8()


def test_corrupt_or_short_input_raises_format_error():
    rng = np.random.default_rng(2)
    writer = EntropyWriter()
    writer.add("a", rng.integers(0, 50, 1000))
    data = writer.finish()
    with pytest.raises(FormatError):
        EntropyReader(data[:-1]).read(1000)  # body no longer whole words
    with pytest.raises(FormatError):
        EntropyReader(b"\x05\x09").read(10)  # model block shorter than it claims
    bad_kind = bytearray(data)
    bad_kind[1] = 9  # first model's kind byte
    with pytest.raises(FormatError, match="model kind"):
        EntropyReader(bytes(bad_kind)).read(1000)


def test_context_split_streams_round_trip_and_pay_for_themselves():
    """Two buckets with very different spreads: one model per bucket beats one model overall."""
    rng = np.random.default_rng(3)
    contexts = rng.integers(0, 3, 4000)  # bucket 3 of 4 stays empty: it gets no model
    values = np.where(contexts == 0, rng.laplace(0, 1, 4000), rng.laplace(5, 40, 4000))
    values = values.round().astype(np.int64)
    writer = EntropyWriter()
    split = writer.add("v", values, contexts, 4)
    writer.add("w", values[:10], contexts[:10] * 0, 4)  # one bucket only: a single model is cheaper
    data = writer.finish()
    reader = EntropyReader(data)
    np.testing.assert_array_equal(reader.read(4000, "v", contexts, 4), values)
    np.testing.assert_array_equal(reader.read(10, "w", contexts[:10] * 0, 4), values[:10])
    reader.check_consumed()
    assert data[1] == KIND_SPLIT
    single = EntropyWriter().add("v", values)
    assert split.model_bits + split.ideal_bits < 0.9 * (single.model_bits + single.ideal_bits)
    assert reader.stats[0].model_bits == split.model_bits
    assert reader.stats[0].ideal_bits == pytest.approx(split.ideal_bits)
    with pytest.raises(FormatError, match="without contexts"):
        EntropyReader(data).read(4000, "v")
    nested = bytearray(data)
    nested[2] = KIND_SPLIT  # the first bucket's model claims to be a split too
    with pytest.raises(FormatError, match="nested"):
        EntropyReader(bytes(nested)).read(4000, "v", contexts, 4)


def test_skewed_stream_uses_two_decays():
    """A one-sided heavy tail (like log-scales): the SKEW model fits both sides, exactly."""
    rng = np.random.default_rng(4)
    values = np.concatenate([-rng.geometric(0.6, 600), rng.geometric(0.05, 5400) - 1]).astype(np.int64)
    data, writer, _ = round_trip([values])
    assert data[1] == KIND_SKEW
    freqs = skew_freqs(300, 40, 20000, 64000)
    assert freqs.sum() == TOTAL and freqs.min() >= 1 and int(np.argmax(freqs)) == 40
    with pytest.raises(FormatError):
        EntropyReader(bytes(data[:1]) + bytes([9]) + bytes(data[2:])).read(len(values))


def test_a_later_payload_repeats_an_earlier_model_in_one_byte():
    """Format 10.0's model memory: a stream like the one before it codes its model as REPEAT (one
    byte where the description took several), bucket by bucket in a SPLIT; a value outside the
    earlier model's range gets a model of its own; a reader without the memory refuses."""
    rng = np.random.default_rng(7)
    contexts = rng.integers(0, 2, 300)
    first = [rng.laplace(0, 3, 300).round().astype(np.int64) for _ in range(2)]
    first[1] = np.where(contexts == 0, first[1] // 8, first[1] * 8)
    writer = EntropyWriter()
    writer.add("a", first[0])
    writer.add("b", first[1], contexts, 2)
    memory = writer.used
    assert set(memory) == {"a", "b#0", "b#1"}
    later = [rng.laplace(0, 3, 300).round().astype(np.int64) for _ in range(2)]
    later[1] = np.where(contexts == 0, later[1] // 8, later[1] * 8)
    for bucket in (0, 1):  # inside the earlier bucket's range, as successive frames mostly are
        old = first[1][contexts == bucket]
        later[1][contexts == bucket] = np.clip(later[1][contexts == bucket], old.min(), old.max())
    later[0][0] = int(first[0].min()) - 1  # below the earlier model's range: a REPEAT cannot code it
    fresh = EntropyWriter()
    fresh_stats = [fresh.add("a", later[0]), fresh.add("b", later[1], contexts, 2)]
    again = EntropyWriter(memory)
    stats = [again.add("a", later[0]), again.add("b", later[1], contexts, 2)]
    data = again.finish()
    assert stats[0].model_bits == fresh_stats[0].model_bits  # "a" needed a new model
    assert stats[1].model_bits == 8 + 8 + 8 < fresh_stats[1].model_bits  # SPLIT + two REPEATs
    assert data.count(bytes([KIND_REPEAT])) >= 2
    reader = EntropyReader(data, "p", memory)
    np.testing.assert_array_equal(reader.read(300, "a"), later[0])
    np.testing.assert_array_equal(reader.read(300, "b", contexts, 2), later[1])
    reader.check_consumed()
    assert set(reader.used) == {"a", "b#0", "b#1"}
    with pytest.raises(FormatError, match="repeats a model"):
        reader = EntropyReader(data, "p")
        reader.read(300, "a")
        reader.read(300, "b", contexts, 2)


def log_uniform(count: int, seed: int) -> np.ndarray:
    """Integers whose bit lengths 0..9 are about equally likely, either sign, from integer
    arithmetic alone (motion-vector residuals look like this: polish and jumps mixed)."""
    out = []
    for k in range(count):
        length = (k * 7 + k // 10 * 3 + seed) % 10
        low = (k * 2654435761 + seed) % (1 << max(length - 1, 0))
        magnitude = 0 if length == 0 else (1 << (length - 1)) + low
        out.append(-magnitude if (k + seed) % 3 == 0 else magnitude)
    return np.array(out, dtype=np.int64)


def test_a_heavy_tailed_stream_takes_bit_length_classes(monkeypatch):
    """Format 11.0's CLASSES model: a stream whose bit lengths spread evenly (as an M-frame's
    vector residuals at 1080p) codes as class symbols plus raw low bits, exactly, in fewer bits than
    any other kind gives it; its bytes are pinned; a later payload repeats it in one byte; an
    alphabet beyond 83 classes is corrupt."""
    values = log_uniform(2000, 0)
    data, writer, reader = round_trip([values])
    assert data[1] == KIND_CLASSES
    assert abs(reader.stats[0].ideal_bits - writer.stats[0].ideal_bits) < 1e-6
    assert hashlib.sha256(data).hexdigest() == (
        "ec645c4e71603fcce97c03903990d2f65068cf4b33312a0958564f9c2932cd88")
    monkeypatch.setattr(entropy, "CLASS_MIN_SPAN", 1 << 50)  # the other kinds alone
    _, others, _ = round_trip([values])
    classes_bits = writer.stats[0].model_bits + writer.stats[0].ideal_bits
    assert classes_bits < 0.95 * (others.stats[0].model_bits + others.stats[0].ideal_bits)
    monkeypatch.undo()
    later = log_uniform(2000, 5)
    again = EntropyWriter(writer.used)
    assert again.add("s0", later).model_bits == 8
    repeated = again.finish()
    assert repeated[1] == KIND_REPEAT
    np.testing.assert_array_equal(EntropyReader(repeated, "p", writer.used).read(2000, "s0"), later)
    wide = values * (1 << 30)  # up to 2**39: raw bits in four chunks of 12 and fewer
    wide_data, _, _ = round_trip([wide])
    assert wide_data[1] == KIND_CLASSES
    corrupt = bytearray(data)
    corrupt[3] = 84  # the alphabet varint after the kind byte and the centre
    with pytest.raises(FormatError, match="classes"):
        EntropyReader(bytes(corrupt)).read(2000)


def test_binary_models_cost_one_byte_and_follow_the_format_tables():
    """Format 14.0: a stream of 0s and 1s takes a BINARY model (kind 128 + level, nothing more),
    whose table is FORMAT.md's integer ladder; split into buckets, short flag streams now pay for
    their models (a histogram bucket cost five bytes); all of it decodes exactly."""
    for level in (0, 5, 63, 64, 100, 127):
        m = level if level < 64 else 127 - level
        rare = (m + 1) ** 2 * 2048
        expected = [TOTAL - rare, rare] if level < 64 else [rare, TOTAL - rare]
        assert binary_freqs(level).tolist() == expected
    rng = np.random.default_rng(12)
    contexts = rng.integers(0, 6, 1600)
    flags = (rng.random(1600) < np.array([0.02, 0.1, 0.3, 0.6, 0.85, 0.97])[contexts]).astype(np.int64)
    writer = EntropyWriter()
    single = writer.add("one", flags)
    split = writer.add("split", flags, contexts, 6)
    still = writer.add("still", np.zeros(300, dtype=np.int64))  # CONSTANT: no body bits
    data = writer.finish()
    assert single.model_bits == 8 and still.model_bits == 16 and split.model_bits == 8 + 6 * 8
    assert split.model_bits + split.ideal_bits < 0.85 * (single.model_bits + single.ideal_bits)
    reader = EntropyReader(data)
    np.testing.assert_array_equal(reader.read(1600, "one"), flags)
    np.testing.assert_array_equal(reader.read(1600, "split", contexts, 6), flags)
    np.testing.assert_array_equal(reader.read(300, "still"), np.zeros(300, dtype=np.int64))
    reader.check_consumed()
    assert data[1] >= KIND_BINARY and data[2] == KIND_SPLIT and all(b >= KIND_BINARY for b in data[3:9])
    assert data[9] == 0  # CONSTANT
    ones = int(flags.sum())
    ideal = -((1600 - ones) * np.log2(binary_freqs(data[1] - KIND_BINARY)[0] / TOTAL)
              + ones * np.log2(binary_freqs(data[1] - KIND_BINARY)[1] / TOTAL))
    assert single.ideal_bits == pytest.approx(ideal)
    assert single.ideal_bits < 1.001 * 1600 * _entropy_bits(ones / 1600)


def _entropy_bits(p: float) -> float:
    return float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


def test_short_laplace_streams_take_the_ladder_model_in_five_bytes():
    """Format 14.0: a LAPLACE model with no shift is written as LADDER (kind 7: lo, A, c and one
    byte for the decay, FORMAT.md's integer ladder), three bytes fewer than LAPLACE's r; its body
    bits are those of the ladder step's table; it decodes exactly."""
    assert [ladder_decay(k) for k in (0, 1, 16, 17, 255)] == [0, 65536 - 62757, 32768, 65536 - 31378, 65535]
    rng = np.random.default_rng(13)
    values = rng.laplace(2, 3, 60).round().astype(np.int64)
    data, writer, _ = round_trip([values])
    assert data[1] == KIND_LADDER and writer.stats[0].model_bits == 40  # kind, lo, A, c, step
    lo, size = int(values.min()), int(values.max() - values.min()) + 1
    step = data[5]
    assert data[2:5] == bytes([zigzag(lo), size, data[4]]) and data[4] < size
    freqs = laplace_freqs(size, data[4], ladder_decay(step))
    assert writer.stats[0].ideal_bits == pytest.approx(-np.log2(freqs[values - lo] / TOTAL).sum())
    wide = rng.integers(-(1 << 20), 1 << 20, 3000)  # needs a shift: LAPLACE with its own r, or another kind
    wide_data, _, _ = round_trip([wide])
    assert wide_data[1] != KIND_LADDER

"""The motion field of P-frames: exact integer prediction, coding, and what it saves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsvc_cli.codec.bitstream.frame_coding import decode_frame, encode_inter_frame, encode_intra_frame
from gsvc_cli.codec.bitstream.motion_vectors import MotionVectors
from gsvc_cli.codec.bitstream.quantise import QuantisedSplats, QuantSteps, quantise
from gsvc_cli.codec.splats import Splats
from gsvc_cli.errors import FormatError


def _splats(n: int, seed: int = 0) -> QuantisedSplats:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g) * torch.tensor([160.0, 96.0])
    chol = torch.cat([1 + 3 * torch.rand(n, 1, generator=g), torch.randn(n, 1, generator=g),
                      1 + 3 * torch.rand(n, 1, generator=g)], 1)
    q = quantise(Splats(means, chol, torch.rand(n, 3, generator=g) - 0.5), QuantSteps.default())
    return q.select(encode_intra_frame(q, QuantSteps.default()).order)


def test_uniform_field_moves_every_centre_by_its_vector() -> None:
    field = MotionVectors(np.tile(np.array([5, -3], dtype=np.int64), (4, 6, 1)), 128)
    points = np.array([[0, 0], [-500, 7], [100_000, 40], [640, 383]], dtype=np.int64)
    assert (field.at(points) == np.array([5, -3])).all()
    assert (MotionVectors.shift(2, 9).at(points) == np.array([2, 9])).all()


def test_bilinear_between_cell_centres_in_integers() -> None:
    vectors = np.zeros((1, 2, 2), dtype=np.int64)
    vectors[0, 1, 0] = 100  # x component: 0 at the centre of cell 0 (x = 8), 100 at cell 1 (x = 24)
    field = MotionVectors(vectors, 16)
    xs = np.array([0, 8, 12, 16, 20, 24, 40], dtype=np.int64)
    got = field.at(np.stack([xs, np.zeros_like(xs)], 1))[:, 0]
    assert got.tolist() == [0, 0, 25, 50, 75, 100, 100]  # clamped outside the centres


def test_residual_coding_round_trips() -> None:
    rng = np.random.default_rng(1)
    field = MotionVectors(rng.integers(-40, 40, size=(5, 7, 2)), 96)
    back = MotionVectors.from_residuals(*field.residuals(), gw=7, gh=5, cell=96)
    assert (back.vectors == field.vectors).all() and back.cell == 96


def test_p_frame_with_field_decodes_exactly_and_costs_little_when_splats_follow_it() -> None:
    prev = _splats(400)
    field = MotionVectors(np.tile(np.array([12, -4], dtype=np.int64), (3, 5, 1)), 256)
    field.vectors[1, 2] = [20, 3]  # one region moves differently
    moved = QuantisedSplats.from_array(field.predict(prev.as_array()))
    kept = torch.arange(len(prev))
    with_field = encode_inter_frame(moved, prev, kept, field)
    without = encode_inter_frame(moved, prev, kept)
    decoded = decode_frame(with_field.payload, prev)
    assert decoded.splats.equal(moved.select(with_field.order))
    assert decode_frame(without.payload, prev).splats.equal(moved.select(without.order))
    assert len(with_field.payload) * 2 < len(without.payload)
    # a zero field is no field at all
    assert encode_inter_frame(prev, prev, kept, MotionVectors.shift(0, 0)).payload == \
        encode_inter_frame(prev, prev, kept).payload


@pytest.mark.parametrize("size", [(0, 3, 1), (70_000, 1, 8), (2, 2, 0), (2, 2, 1 << 20)])
def test_bad_field_sizes_are_format_errors(size: tuple[int, int, int]) -> None:
    prev = _splats(50)
    coded = encode_inter_frame(prev, prev, torch.arange(len(prev)), MotionVectors.shift(3, 3))
    payload = bytearray(coded.payload)
    # header: type, n_cur, n_prev (one byte each here), then gw, gh, cell varints
    assert payload[3:6] == bytes([1, 1, 1])
    head = bytearray()
    for value in size:
        while True:
            byte = value & 0x7F
            value >>= 7
            head.append(byte | (0x80 if value else 0))
            if not value:
                break
    with pytest.raises(FormatError):
        decode_frame(bytes(payload[:3] + head + payload[6:]), prev)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (2, 2), (9, 13), (40, 64)])
def test_median_predicted_fields_rebuild_exactly_in_c_and_in_python(shape: tuple[int, int]) -> None:
    """Format 12.0's flagged fields: moving cells coded against the median of their left, upper and
    upper-right neighbours. The C recurrence and the Python one rebuild every field exactly,
    including one row, one column and values near the largest vector."""
    from gsvc_cli.codec.bitstream.motion_vectors import (
        median_residuals,
        undo_median_reference,
        undo_median_residuals,
    )
    from gsvc_cli.render.capi import median_field

    rng = np.random.default_rng(sum(shape))
    gh, gw = shape
    for scale in (3, 60_000):
        jumps = rng.integers(-scale, scale + 1, size=(gh, gw, 2)) * (rng.random((gh, gw, 1)) < 0.3)
        vectors = np.clip(np.cumsum(jumps, axis=1), -65536, 65536)
        moving, residuals = median_residuals(vectors)
        assert len(residuals) == int(moving.sum())
        full = np.zeros((gh * gw, 2), dtype=np.int64)
        full[moving] = residuals
        assert np.array_equal(undo_median_reference(full.reshape(gh, gw, 2), moving.reshape(gh, gw)), vectors)
        assert np.array_equal(median_field(full.reshape(gh, gw, 2), moving.reshape(gh, gw)), vectors)
        assert np.array_equal(undo_median_residuals(moving, residuals, gh, gw), vectors)


def test_the_median_predicts_a_new_vector_from_the_row_above() -> None:
    """A moving edge that slants across the rows: each row's run of the second vector starts one
    cell later, so against its left neighbour every start is a jump, against the median of the
    row above it is exact (zero residual) from the second row on."""
    from gsvc_cli.codec.bitstream.motion_vectors import median_residuals

    gh, gw = 8, 16
    vectors = np.zeros((gh, gw, 2), dtype=np.int64)
    for r in range(gh):
        vectors[r, r + 4:] = (9, -5)
    moving, residuals = median_residuals(vectors)
    assert int(moving.sum()) == gh  # one run start a row (column 0 copies the row above)
    assert (residuals[0] == (9, -5)).all() and not residuals[1:].any()

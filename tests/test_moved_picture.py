"""M-frames: the previous picture moved block by block, coded, decoded and sought into exactly."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from gsvc_cli.codec.bitstream.container import GsvcReader
from gsvc_cli.codec.bitstream.entropy import put_varint
from gsvc_cli.codec.bitstream.frame_coding import FRAME_M, decode_values, encode_picture_frame
from gsvc_cli.codec.bitstream.motion_vectors import MotionVectors
from gsvc_cli.codec.decoder import decode_frames
from gsvc_cli.codec.moved_picture import grid_shape, move_picture
from gsvc_cli.errors import FormatError

GOLDEN = Path(__file__).resolve().parent / "golden" / "small.gsvc"


def _picture(height: int = 12, width: int = 16) -> np.ndarray:
    values = np.arange(3 * height * width, dtype=np.float32).reshape(3, height, width)
    return values / values.max()


def test_each_cell_copies_from_where_its_vector_points_edges_replicated() -> None:
    picture = _picture()
    vectors = np.zeros((2, 2, 2), dtype=np.int64)  # 8-pixel cells over 16x12: a 2x2 grid
    vectors[0, 0] = (2, 0)  # top-left cell: content moved 2 px right
    vectors[1, 1] = (0, -3)  # bottom-right cell: content moved 3 px up
    moved = move_picture(picture, MotionVectors(vectors, 8))
    assert moved.dtype == picture.dtype and moved.shape == picture.shape
    assert np.array_equal(moved[:, :8, 2:8], picture[:, :8, 0:6])
    assert np.array_equal(moved[:, :8, 0], picture[:, :8, 0])  # read left of the frame: edge
    assert np.array_equal(moved[:, :8, 8:], picture[:, :8, 8:])  # still cells are copies
    assert np.array_equal(moved[:, 8:9, 8:], picture[:, 11:12, 8:])  # 8 + 3 = 11: inside
    assert np.array_equal(moved[:, 9:12, 8:], np.repeat(picture[:, 11:12, 8:], 3, axis=1))  # clamped


def test_a_field_that_does_not_cover_the_frame_is_refused() -> None:
    assert grid_shape(16, 12, 8) == (2, 2) and grid_shape(17, 12, 8) == (2, 3)
    with pytest.raises(FormatError, match="does not cover"):
        move_picture(_picture(), MotionVectors(np.zeros((1, 2, 2), dtype=np.int64), 8))


def test_m_frame_payload_round_trip_and_bad_payloads() -> None:
    vectors = np.array([[[1, -2], [0, 0], [5, 3]]], dtype=np.int64)
    coded = encode_picture_frame(MotionVectors(vectors, 16))
    assert coded.frame_type == "M" and len(coded.order) == 0 and coded.stats.n_splats == 0
    assert len(coded.payload) < 40
    decoded = decode_values(coded.payload, None, "m", "M")
    assert decoded.frame_type == "M" and decoded.values.shape == (0, 8) and decoded.motion is not None
    assert np.array_equal(decoded.motion.vectors, vectors) and decoded.motion.cell == 16
    with pytest.raises(FormatError, match="disagrees"):
        decode_values(coded.payload, None, "m", "P")
    head = bytearray([FRAME_M])
    put_varint(head, 5)  # an M-frame with splats
    with pytest.raises(FormatError, match="no splats"):
        decode_values(bytes(head) + coded.payload[2:], None, "m")
    no_field = bytearray([FRAME_M, 0, 0, 0, 0])
    with pytest.raises(FormatError, match="without a motion field"):
        decode_values(bytes(no_field), None, "m")
    for cut in range(1, 10):  # inside the header and the stream models
        with pytest.raises(FormatError):
            decode_values(coded.payload[:cut], None, "m")
    for at in range(1, len(coded.payload)):  # any flipped byte: an error or a valid field, no crash
        data = bytearray(coded.payload)
        data[at] ^= 0x5A
        with contextlib.suppress(FormatError):
            assert decode_values(bytes(data), None, "m").motion is not None


def test_decoding_from_an_m_frame_builds_the_pictures_it_moves() -> None:
    """The golden file is I P M P I: a decode that starts at the M-frame gives the same picture as
    a decode from the start, and the P-frame after it predicts from the P before it."""
    with GsvcReader(GOLDEN) as reader:
        whole = {d.index: d for d in decode_frames(reader)}
        assert "".join(d.frame_type for d in whole.values()) == "IPMPI"
        assert whole[2].n_splats == 0 and whole[2].arrays is None
        assert not np.array_equal(whole[2].image, whole[1].image)  # its field moves something
        for start in range(5):
            part = list(decode_frames(reader, start, 2))
            assert [d.index for d in part] == list(range(start, min(5, start + 2)))
            for d in part:
                assert np.array_equal(d.image, whole[d.index].image)

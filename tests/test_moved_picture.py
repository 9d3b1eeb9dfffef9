"""M-frames: the previous picture moved block by block, coded, decoded and sought into exactly."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gsvc_cli.codec.bitstream.container import GsvcReader
from gsvc_cli.codec.bitstream.entropy import ModelChoices, put_varint
from gsvc_cli.codec.bitstream.frame_coding import (
    FRAME_M,
    FRAME_M_FLAGGED,
    FRAME_M_OVERLAPPED,
    FRAME_M_QUARTER,
    FRAME_M_RESIDUAL,
    MEDIAN_UNIT_BIT,
    TEMPORAL_FLAGS_BIT,
    CodingMemory,
    decode_values,
    encode_picture_frame,
)
from gsvc_cli.codec.bitstream.motion_vectors import (
    MotionVectors,
    flag_contexts,
    median_residuals,
    moving_cells,
    neighbour_predictor,
)
from gsvc_cli.codec.bitstream.quantise import QuantSteps, dequantise, quantise
from gsvc_cli.codec.decoder import PictureUpdate, decode_frames, update_picture
from gsvc_cli.codec.encoder.gop import EncoderSettings, encode_video
from gsvc_cli.codec.encoder.motion import search_scale
from gsvc_cli.codec.encoder.picture_motion import (
    FAR_SCALE,
    FAR_SCALE_LARGE,
    RADIUS,
    VectorCosts,
    field_bits_by_cell,
    picture_motion,
    quarter_refine,
    refine_field,
    vector_bits,
)
from gsvc_cli.codec.encoder.presets import get_preset
from gsvc_cli.codec.encoder.rate_control import RateTarget
from gsvc_cli.codec.encoder.rd import RDTuning, lagrangian
from gsvc_cli.codec.moved_picture import (
    SHARP_TAPS,
    border_weights,
    grid_shape,
    move_picture,
    move_picture_numpy,
)
from gsvc_cli.codec.splats import Splats
from gsvc_cli.errors import FormatError
from gsvc_cli.render import capi, render
from gsvc_cli.render.capi import window_sums
from gsvc_cli.video import Frame, open_video

GOLDEN = Path(__file__).resolve().parent / "golden" / "small.gsvc"
BUNDLED = next((Path(__file__).resolve().parents[1] / "gsvc_cli" / "data").glob("*.y4m"))


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


def test_quarter_pixel_reads_are_cubic_exact_on_whole_pixels_and_stay_in_range() -> None:
    rng = np.random.default_rng(7)
    picture = rng.random((3, 24, 40), dtype=np.float32)
    vectors = rng.integers(-6, 7, size=(3, 5, 2))
    whole = move_picture(picture, MotionVectors(vectors, 8))
    assert np.array_equal(move_picture(picture, MotionVectors(4 * vectors, 8, 4)), whole)
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32) / 64, (3, 24, 40)).copy()
    half = move_picture(ramp, MotionVectors(np.tile([2, 0], (3, 5, 1)), 8, 4))  # read at x - 1/2
    assert np.allclose(half[:, :, 2:-2], ramp[:, :, 2:-2] - 0.5 / 64)  # a cubic is exact on a line
    quarter = move_picture(ramp, MotionVectors(np.tile([0, -3], (3, 5, 1)), 8, 4))  # y only: a copy
    assert np.array_equal(quarter, ramp)
    edge = np.zeros((3, 24, 40), dtype=np.float32)
    edge[:, :, 20:] = 1.0  # a step: the cubic overshoots, the picture stays in [0, 1]
    moved = move_picture(edge, MotionVectors(np.tile([1, 1], (3, 5, 1)), 8, 4))
    assert moved.min() == 0.0 and moved.max() == 1.0 and 0 < moved[0, 5, 20] < 1


@pytest.mark.parametrize("height, width, cell",
                         [(24, 40, 8), (37, 53, 4), (7, 5, 1), (30, 40, 64), (96, 128, 16), (70, 100, 32)])
def test_the_c_kernel_moves_pictures_to_the_same_bits_as_numpy(height: int, width: int, cell: int) -> None:
    """FORMAT.md fixes every float32 operation of a quarter-pixel read and of the overlapped blend:
    the decoder's C kernel (no fused multiply-add, whatever -march allows) and the numpy fallback
    must agree bit for bit, vectors far outside the frame included."""
    rng = np.random.default_rng(height * width + cell)
    picture = rng.random((3, height, width), dtype=np.float32)
    shape = (*grid_shape(width, height, cell), 2)
    for per_pixel in (1, 4):
        for reach in (3, 80):
            vectors = rng.integers(-reach * per_pixel, reach * per_pixel + 1, size=shape)
            vectors[rng.random(shape[:2]) < 0.5] = vectors[0, 0]  # fields repeat vectors: blends skip them
            for overlapped, sharp in itertools.product((False, True), (False, True)[:per_pixel // 2 + 1]):
                motion = MotionVectors(vectors, cell, per_pixel, overlapped, sharp)
                native = capi.move_picture(picture, motion.vectors, cell, per_pixel, threads=2,
                                           overlapped=overlapped, sharp=sharp)
                assert np.array_equal(native, move_picture_numpy(picture, motion))
                assert np.array_equal(move_picture(picture, motion), native)


def test_the_8_tap_filter_is_exact_on_whole_pixels_and_blurs_a_chain_less_than_the_cubic() -> None:
    """SHARP_TAPS: whole-pixel reads copy, every row sums to 1 (exact in float32); four quarter-pixel
    moves of real detail land nearer the one whole-pixel move than the cubic's four do (why the
    filter exists: chains of M-frames over fine detail), and stay in [0, 1]."""
    assert np.array_equal(SHARP_TAPS.sum(1), np.ones(4, dtype=np.float32))
    rng = np.random.default_rng(3)
    picture = rng.random((3, 24, 40), dtype=np.float32)
    vectors = rng.integers(-6, 7, size=(3, 5, 2))
    whole = move_picture(picture, MotionVectors(vectors, 8))
    assert np.array_equal(move_picture(picture, MotionVectors(4 * vectors, 8, 4, sharp=True)), whole)
    y = _luma()[:64, :96].numpy()
    detail = np.stack([y, y, y]).astype(np.float32)
    target = move_picture(detail, MotionVectors(np.tile([1, 1], (8, 12, 1)), 8))[:, 8:-8, 8:-8]
    errors = {}
    for sharp in (False, True):
        chain = detail
        for _ in range(4):
            chain = move_picture(chain, MotionVectors(np.tile([1, 1], (8, 12, 1)), 8, 4, sharp=sharp))
        assert chain.min() >= 0.0 and chain.max() <= 1.0
        errors[sharp] = float(((chain[:, 8:-8, 8:-8] - target) ** 2).mean())
    assert errors[True] < 0.8 * errors[False], errors


def test_a_quarter_pixel_field_round_trips_as_payload_kind_3() -> None:
    vectors = np.array([[[5, -2], [0, 0], [-7, 13]]], dtype=np.int64)
    coded = encode_picture_frame(MotionVectors(vectors, 16, 4), field_coding="neighbour")
    assert coded.payload[0] == FRAME_M_QUARTER and coded.frame_type == "M"
    decoded = decode_values(coded.payload, None, "m", "M")
    assert decoded.motion is not None and decoded.motion.per_pixel == 4
    assert np.array_equal(decoded.motion.vectors, vectors)
    whole = decode_values(encode_picture_frame(MotionVectors(vectors, 16)).payload, None, "m", "M")
    assert whole.motion is not None and whole.motion.per_pixel == 1
    with pytest.raises(ValueError, match="quarter"):
        MotionVectors(vectors, 16, 2)
    picture = _picture(16, 48)  # the field's 3x1 cells of 16 pixels cover it
    for cut in range(1, 10):
        with pytest.raises(FormatError):
            decode_values(coded.payload[:cut], None, "m")
    for at in range(1, len(coded.payload)):  # a flipped byte: an error, or a field that moves safely
        data = bytearray(coded.payload)
        data[at] ^= 0x5A
        with contextlib.suppress(FormatError):
            motion = decode_values(bytes(data), None, "m").motion
            assert motion is not None
            with contextlib.suppress(FormatError):  # a field of another size: refused, not read
                moved = move_picture(picture, motion)
                assert moved.shape == picture.shape and moved.min() >= 0.0 and moved.max() <= 1.0


def test_quarter_refinement_finds_a_sub_pixel_translation() -> None:
    """Content moved 1 1/4 px right and 1 1/2 px up (through the decoder's own read): the whole-pixel
    search gets within a pixel, the refinement lands on the vector, and its field moves the
    reference onto the frame far better than the whole-pixel one."""
    luma = _luma()
    true = np.tile([5, -6], (*grid_shape(luma.shape[1], luma.shape[0], 16), 1))
    image = torch.from_numpy(move_picture(luma.numpy()[None], MotionVectors(true, 16, 4))[0])
    whole = picture_motion(luma, image, 16, lam=1e-6, luma_weight=0.75)
    quarter = quarter_refine(luma.numpy()[None], image, 16, whole, lam=1e-6, luma_weight=0.75)
    inner = quarter[1:-1, 1:-1].reshape(-1, 2)  # flat cells of the clip's sky may land anywhere
    assert (inner == torch.tensor([5, -6])).all(dim=1).float().mean() > 0.75
    def error(motion: MotionVectors) -> float:
        return float(np.square(move_picture(luma.numpy()[None], motion)[0] - image.numpy()).sum())

    assert error(MotionVectors(quarter.numpy(), 16, 4)) < 0.2 * error(MotionVectors(whole.numpy(), 16))


def test_a_field_that_does_not_cover_the_frame_is_refused() -> None:
    assert grid_shape(16, 12, 8) == (2, 2) and grid_shape(17, 12, 8) == (2, 3)
    with pytest.raises(FormatError, match="does not cover"):
        move_picture(_picture(), MotionVectors(np.zeros((1, 2, 2), dtype=np.int64), 8))


def test_m_frame_payload_round_trip_and_bad_payloads() -> None:
    vectors = np.array([[[1, -2], [0, 0], [5, 3]]], dtype=np.int64)
    coded = encode_picture_frame(MotionVectors(vectors, 16), field_coding="neighbour")
    assert coded.payload[0] == FRAME_M and coded.frame_type == "M"
    assert len(coded.order) == 0 and coded.stats.n_splats == 0
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
    """The golden file is I P M M M P I (the second M in quarter pixels, with 6 residual splats,
    the third through the 8-tap filter, with 3 residual splats and the second's steps and models
    repeated): a decode that starts at an M-frame gives the same picture as a decode from the
    start, and the P-frame after them predicts from the P before them."""
    with GsvcReader(GOLDEN) as reader:
        whole = {d.index: d for d in decode_frames(reader)}
        assert "".join(d.frame_type for d in whole.values()) == "IPMMMPI"
        for k in (2, 3, 4):
            assert whole[k].n_splats == {2: 0, 3: 6, 4: 3}[k] and whole[k].arrays is None
            assert not np.array_equal(whole[k].image, whole[k - 1].image)  # its field moves something
        for start in range(7):
            part = list(decode_frames(reader, start, 2))
            assert [d.index for d in part] == list(range(start, min(7, start + 2)))
            for d in part:
                assert np.array_equal(d.image, whole[d.index].image)


FAST_STEPS_BEFORE = 250
"""Preset fast's I-fit steps on small frames when these clips were made."""


def _encode_128x96(frames: list[Frame], info, out: Path, field_coding: str = "neighbour", **tuning):
    """Encode 4 frames of 128x96 at quality 27, preset fast: (summary, the encoder's pictures).
    Fields coded as format 6.0 did (kinds 2-4) unless `field_coding` says otherwise, so that the
    kind each test looks for is the one written; `tuning`: other RDTuning fields.
    The I-frame at lambda (ip_lambda_ratio 1.0, the default until f287c24), where these clips were
    made to bring out each M-frame kind: at lambda / 2 the sharper I-frame tips their 3 inter
    frames elsewhere (the spot clip: I M P M with no residual splats). What these tests check is
    the M-frame kinds and their exact decoding, not the I-frame's lambda. For the same reason the
    I-frame is fitted in fast's 250 steps of before c1782b0 at the learning rates of then (now
    more steps at twice the rates below 1280x720)."""
    recon: dict[int, np.ndarray] = {}
    tuning.setdefault("intra_steps_scale", FAST_STEPS_BEFORE / get_preset("fast").small_intra_steps)
    tuning.setdefault("intra_lr_scale", 1.0)  # and at its learning rates of then
    tuning.setdefault("intra_anneal_steps", 0)
    settings = EncoderSettings(RateTarget(quality=27), "fast",
                               tuning=RDTuning(ip_lambda_ratio=1.0, field_coding=field_coding, **tuning))
    summary = encode_video(iter(frames), info.with_(width=128, height=96, frame_count=4), out, settings,
                           frame_count=4,
                           on_frame=lambda k, img: recon.__setitem__(k, img.numpy().copy()))
    return summary, recon


def _check_kind_decodes_exactly(out: Path, recon: dict[int, np.ndarray], kind: int) -> None:
    """`out` holds a payload of `kind`; decoding from the start, and from that frame (a seek),
    gives the encoder's pictures bit for bit."""
    with GsvcReader(out) as reader:
        kinds = [record.payload[0] for _, record in reader.frames()]
        assert kind in kinds, kinds
        for start in (0, kinds.index(kind)):
            for decoded in decode_frames(reader, start):
                assert np.array_equal(decoded.image, recon[decoded.index])


def _luma(scale: int = 1) -> torch.Tensor:
    """The bundled clip's first luma plane in [0, 1], upscaled `scale` times (a frame larger than
    the direct search covers)."""
    with open_video(BUNDLED) as reader:
        y = next(iter(reader)).y.astype(np.float32) / 255
    return torch.from_numpy(np.kron(y, np.ones((scale, scale), dtype=np.float32)))


def test_vector_costs_price_the_zero_flag() -> None:
    """By default a residual costs what the 6.0 coding's two components cost (zero: 1 bit each);
    flagged, a zero residual costs -log2 of the zero share and any other the flag of the rest on
    top of its components; the search under flagged costs keeps more of a field rigid."""
    residuals = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-3.0, 2.0]])
    components = 1.0 + 2.0 * torch.log2(1.0 + residuals.abs())
    assert torch.allclose(vector_bits(residuals), components.sum(-1))
    flagged = vector_bits(residuals, VectorCosts.flagged(0.8))
    flag = -np.log2(0.2)
    expected = torch.tensor([-np.log2(0.8), components[1].sum() + flag, components[2].sum() + flag])
    assert torch.allclose(flagged, expected.float())
    assert VectorCosts.flagged(1.0) == VectorCosts.flagged(0.95)  # a share of 1 would make the flag free
    luma = _luma()
    noise = 0.03 * torch.randn(luma.shape, generator=torch.Generator().manual_seed(0))
    moved = (torch.roll(luma, shifts=(-2, 3), dims=(0, 1)) + noise).clamp(0, 1)  # noise: vectors waver
    plain = picture_motion(luma, moved, 8, lam=2e-4, luma_weight=0.75)
    priced = picture_motion(luma, moved, 8, lam=2e-4, luma_weight=0.75, costs=VectorCosts.flagged(0.9))

    def zero_residuals(v: torch.Tensor) -> int:
        rx, ry = MotionVectors(v.numpy(), 8).residuals()
        return int(((rx == 0) & (ry == 0)).sum())

    assert zero_residuals(priced) > zero_residuals(plain) + 60  # 830 against 656 of 1200 cells


def test_vector_costs_price_each_flag_by_its_bucket_on_the_last_fields_grid() -> None:
    """With the last field's moving cells and each bucket's zero share, a field of that grid prices
    a cell's flags by its bucket (flag_contexts: how many of it and its four neighbours moved;
    shares clipped to [0.02, 0.98]), as format 13.0 splits them; a field of another grid, or
    costs without bucket shares, take the one price of the whole field's share."""
    moving = np.zeros((4, 5), dtype=bool)
    moving[1, 1] = moving[1, 2] = True
    shares = (0.99, 0.7, 0.5, 0.3, 0.2, 0.1)
    costs = VectorCosts.flagged(0.8, True, moving, shares)
    zero, move = costs.prices(4, 5)
    bucket = flag_contexts(moving).reshape(4, 5)
    assert bucket[0, 0] == 0 and bucket[1, 1] == 2 and bucket[0, 1] == 1
    clipped = np.minimum(np.array(shares), 0.98)
    np.testing.assert_allclose(zero, -np.log2(clipped)[bucket], rtol=1e-6)
    np.testing.assert_allclose(move, -np.log2(1 - clipped)[bucket], rtol=1e-6)
    for other in (costs.prices(3, 5), VectorCosts.flagged(0.8, True, moving).prices(4, 5)):
        np.testing.assert_allclose(other[0], np.full((len(other[0]), 5), -np.log2(0.8)), rtol=1e-6)
        np.testing.assert_allclose(other[1], np.full((len(other[0]), 5), -np.log2(0.2)), rtol=1e-6)
    field = torch.zeros(4, 5, 2)
    field[1, 1, 0] = 2.0  # moving (and so is the cell right of it, back to zero)
    np.testing.assert_allclose(vector_bits(field, costs)[0, 0], zero[0, 0])
    expected = move[1, 1] + (1 + 2 * np.log2(3)) + 1  # the flag, then x = 2 and y = 0 as components
    np.testing.assert_allclose(vector_bits(field, costs)[1, 1], expected, rtol=1e-6)


@pytest.mark.parametrize("scale", [1, 2])
def test_the_rd_search_finds_a_translation_and_lambda_makes_the_field_rigid(scale: int) -> None:
    luma = _luma(scale)
    moved = torch.roll(luma, shifts=(-2, 3), dims=(0, 1))  # content moves 3 px right, 2 px up
    vectors = picture_motion(luma, moved, 16, lam=1e-6, luma_weight=0.75)
    gh, gw = grid_shape(luma.shape[1], luma.shape[0], 16)
    assert vectors.shape == (gh, gw, 2) and vectors.dtype == torch.int64
    inner = vectors[1:-1, 1:-1].reshape(-1, 2)
    assert (inner == torch.tensor([3, -2])).all(dim=1).float().mean() > 0.9
    rigid = picture_motion(luma, moved, 16, lam=1e3, luma_weight=0.75)  # bits dominate
    assert (rigid == rigid[0, 0]).all()



def test_the_far_search_finds_motion_beyond_the_search_radius() -> None:
    """Content moving 11 px a frame (beyond RADIUS) on a frame the direct search covers: within
    RADIUS the field cannot hold the motion; the far search (a search at 1/FAR_SCALE size, refined
    at full size) finds it in nearly every inner cell."""
    luma = _luma()
    moved = torch.roll(luma, shifts=(1, -11), dims=(0, 1))  # 11 px left, 1 px down
    assert RADIUS < 11 <= FAR_SCALE * RADIUS
    inner = slice(1, -1)
    near = picture_motion(luma, moved, 16, lam=1e-6, luma_weight=0.75)[inner, inner].reshape(-1, 2)
    far = picture_motion(luma, moved, 16, lam=1e-6, luma_weight=0.75, far=True)[inner, inner].reshape(-1, 2)
    truth = torch.tensor([-11, 1])
    assert not (near == truth).all(dim=1).any()
    assert (far == truth).all(dim=1).float().mean() > 0.9

def test_the_far_search_reaches_past_a_large_frames_search() -> None:
    """A frame larger than the direct search covers (640x480: searched at half size, so within
    RADIUS x 2 px): content moving 22 px is beyond that search, and the far search (FAR_SCALE_LARGE
    times as downscaled) finds it in every inner cell."""
    luma = _luma(2)
    moved = torch.roll(luma, shifts=(2, -22), dims=(0, 1))
    assert RADIUS * search_scale(*luma.shape) < 22 <= RADIUS * search_scale(*luma.shape) * FAR_SCALE_LARGE
    inner = slice(2, -2)
    near = picture_motion(luma, moved, 16, lam=1e-6, luma_weight=0.75)[inner, inner].reshape(-1, 2)
    far = picture_motion(luma, moved, 16, lam=1e-6, luma_weight=0.75, far=True)[inner, inner].reshape(-1, 2)
    truth = torch.tensor([-22, 2])
    assert not (near == truth).all(dim=1).any()
    assert (far == truth).all(dim=1).all()


def _pan_frames() -> tuple[list[Frame], object]:
    """4 frames of 128x96 from the bundled clip's first frame, the window moving 2 px a frame."""
    with open_video(BUNDLED) as reader:
        info = reader.info
        source = next(iter(reader))
    frames = []
    for k in range(4):
        x, y = 100 + 2 * k, 60
        planes = (source.y[y:y + 96, x:x + 128], source.u[y // 2:y // 2 + 48, x // 2:x // 2 + 64],
                  source.v[y // 2:y // 2 + 48, x // 2:x // 2 + 64])
        frames.append(Frame(tuple(np.ascontiguousarray(p) for p in planes), source.pix_fmt,
                            source.color_matrix, source.color_range, k))
    return frames, info


def test_m_frames_are_chosen_on_a_pan_and_decode_exactly(tmp_path: Path) -> None:
    """A window panning 2 px a frame at a low quality: moving the picture (with a few residual
    splats where J says so) costs less than updating splats, and the decoder reproduces every
    M-frame."""
    frames, info = _pan_frames()
    out = tmp_path / "pan.gsvc"
    summary, recon = _encode_128x96(frames, info, out)
    types = "".join(f.frame_type for f in summary.frames)
    assert types[0] == "I" and "M" in types, types
    for f in summary.frames:
        if f.frame_type == "M":
            assert f.bits < summary.frames[0].bits / (2 if f.n_splats else 4)
    with GsvcReader(out) as reader:
        for decoded in decode_frames(reader):
            assert np.array_equal(decoded.image, recon[decoded.index])


def _half_pixel_pan_frames() -> tuple[list[Frame], object]:
    """A window panning half a pixel a frame (a 1-px pan, box-downscaled 2x; flat chroma)."""
    with open_video(BUNDLED) as reader:
        info = reader.info
        source = next(iter(reader))
    frames = []
    for k in range(4):
        crop = source.y[40:232, 60 + k:316 + k].astype(np.float32)
        luma = np.round(crop.reshape(96, 2, 128, 2).mean(axis=(1, 3))).astype(np.uint8)
        flat = np.full((48, 64), 128, dtype=np.uint8)
        frames.append(Frame((luma, flat, flat.copy()), source.pix_fmt, source.color_matrix,
                            source.color_range, k))
    return frames, info


def test_a_half_pixel_pan_gets_quarter_pixel_m_frames_that_decode_exactly(tmp_path: Path) -> None:
    """At a low quality the encoder moves the picture of a half-pixel pan by fractional vectors,
    and the decoder reproduces them."""
    frames, info = _half_pixel_pan_frames()
    out = tmp_path / "half.gsvc"
    _, recon = _encode_128x96(frames, info, out)
    _check_kind_decodes_exactly(out, recon, FRAME_M_QUARTER)


def test_the_8_tap_filter_is_chosen_on_a_detailed_pan_and_decodes_exactly(tmp_path: Path) -> None:
    """Real detail panned half a pixel a frame by an exact (Fourier) shift, default field coding:
    its half-pixel reads cost less through the 8-tap filter (format 9.0, the unit byte's high
    bit), and the decoder reproduces those M-frames bit for bit; without sharp_filter no field
    carries the bit. (The box-downscaled pan above is smoother than band-limited: the cubic wins.)"""
    with open_video(BUNDLED) as reader:
        info = reader.info
        source = next(iter(reader))
    luma = source.y[40:136, 60:188].astype(np.float64)
    spectrum = np.fft.fft2(luma)
    fx = np.fft.fftfreq(128)[None, :]
    flat = np.full((48, 64), 128, dtype=np.uint8)
    frames = []
    for k in range(4):
        shifted = np.fft.ifft2(spectrum * np.exp(-2j * np.pi * fx * 0.5 * k)).real
        frames.append(Frame((np.clip(np.round(shifted), 0, 255).astype(np.uint8), flat, flat.copy()),
                            source.pix_fmt, source.color_matrix, source.color_range, k))
    for sharp in (True, False):  # at quality 36: at 27 the I-frame's splats keep too little detail to matter
        out = tmp_path / f"sharp{sharp}.gsvc"
        recon: dict[int, np.ndarray] = {}
        settings = EncoderSettings(RateTarget(quality=36), "fast", tuning=RDTuning(sharp_filter=sharp))
        encode_video(iter(frames), info.with_(width=128, height=96, frame_count=4), out, settings,
                     frame_count=4,
                     on_frame=lambda k, img, into=recon: into.__setitem__(k, img.numpy().copy()))
        with GsvcReader(out) as reader:
            fields, memory = [], None
            for _, record in reader.frames():
                if record.frame_type == "P":  # splat updates: no field, and no change to the M-frames' memory
                    continue
                picture = decode_values(record.payload, None, "m", memory=memory)
                memory = picture.memory
                fields += [picture.motion] if record.frame_type == "M" else []
            assert any(f is not None and f.sharp for f in fields) == sharp, fields
            for decoded in decode_frames(reader):
                assert np.array_equal(decoded.image, recon[decoded.index])


def _residual_splats(n: int, height: int, width: int, seed: int) -> Splats:
    """n small splats with colours of both signs (what an M-frame's residual looks like)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g) * torch.tensor([width, height], dtype=torch.float32)
    chol = torch.stack([1 + 3 * torch.rand(n, generator=g), torch.rand(n, generator=g) - 0.5,
                        1 + 3 * torch.rand(n, generator=g)], dim=1)
    return Splats(means, chol, torch.rand(n, 3, generator=g) * 0.6 - 0.3)


@pytest.mark.parametrize("per_pixel", [1, 4])
def test_residual_splats_round_trip_as_kind_4_and_add_to_the_moved_picture(per_pixel: int) -> None:
    """Kind 4: the field and its residual splats (own steps) come back exactly, and the decoder's
    picture is the encoder's clamp(moved + render(residual)) bit for bit."""
    height, width = 16, 48
    motion = MotionVectors(np.array([[[5, -2], [0, 0], [-7, 13]]], dtype=np.int64), 16, per_pixel)
    steps = QuantSteps.default().scaled(2.0)
    q = quantise(_residual_splats(7, height, width, per_pixel), steps)
    coded = encode_picture_frame(motion, (q, steps), "neighbour")
    assert coded.payload[0] == FRAME_M_RESIDUAL and coded.frame_type == "M" and coded.stats.n_splats == 7
    decoded = decode_values(coded.payload, None, "m", "M")
    ordered = q.select(coded.order)
    assert decoded.motion is not None and decoded.motion.per_pixel == per_pixel
    assert np.array_equal(decoded.motion.vectors, motion.vectors) and decoded.steps == steps
    assert np.array_equal(decoded.values, ordered.as_array())
    picture = _picture(height, width)
    splats = dequantise(ordered, steps)
    expected = (torch.from_numpy(move_picture(picture, motion))
                + render(splats.means, splats.chol, splats.colors, height, width)).clamp(0, 1)
    arrays = tuple(t.numpy() for t in (splats.means, splats.chol, splats.colors))
    got = update_picture(picture, PictureUpdate(decoded.motion, arrays))
    assert np.array_equal(got, expected.numpy())
    assert not np.array_equal(got, move_picture(picture, motion))  # the residual changed it
    with pytest.raises(ValueError, match="at least one"):
        encode_picture_frame(motion, (q.select(torch.zeros(0, dtype=torch.long)), steps))


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a NaN from a flipped scale is a defect too
def test_kind_4_payloads_cut_or_flipped_give_an_error_or_a_safe_picture() -> None:
    motion = MotionVectors(np.array([[[5, -2], [0, 0], [-7, 13]]], dtype=np.int64), 16, 4)
    steps = QuantSteps.default()
    residual = (quantise(_residual_splats(5, 16, 48, 3), steps), steps)
    coded = encode_picture_frame(motion, residual, "neighbour")
    head = bytearray([FRAME_M_RESIDUAL, 0]) + coded.payload[2:]  # no splats: refused
    with pytest.raises(FormatError, match="at least one splat"):
        decode_values(bytes(head), None, "m")
    bad_unit = bytearray(coded.payload)
    bad_unit[2] = 2
    with pytest.raises(FormatError, match="1/2 pixels"):
        decode_values(bytes(bad_unit), None, "m")
    for cut in range(1, 34):  # inside the header (30 bytes) and the stream models
        with pytest.raises(FormatError):
            decode_values(coded.payload[:cut], None, "m")
    picture = _picture(16, 48)
    for at in range(1, len(coded.payload)):
        data = bytearray(coded.payload)
        data[at] ^= 0x5A
        with contextlib.suppress(FormatError):
            decoded = decode_values(bytes(data), None, "m")
            assert decoded.motion is not None and decoded.steps is not None
            from gsvc_cli.codec.bitstream.dequant import dequantise_values

            with contextlib.suppress(FormatError):
                got = update_picture(picture, PictureUpdate(decoded.motion,
                                                            dequantise_values(decoded.values, decoded.steps)))
                assert got.shape == picture.shape and got.min() >= 0.0 and got.max() <= 1.0


@pytest.mark.parametrize("with_residual", [False, True])
def test_flagged_fields_round_trip_as_kind_5_and_best_is_the_shorter(with_residual: bool) -> None:
    """Kind 5 codes the same field (and residual splats) as kinds 2-4; "best" writes the shorter of
    the two payloads. Fields as a motion search leaves them: mostly their neighbour's vector."""
    rng = np.random.default_rng(5)
    steps = QuantSteps.default().scaled(2.0)
    for trial in range(40):
        gh, gw = (int(v) for v in rng.integers(1, 14, size=2))
        per_pixel = (1, 4)[trial % 2]
        jumps = rng.integers(-6, 7, size=(gh, gw, 2)) * (rng.random((gh, gw, 1)) < 0.25)
        motion = MotionVectors(np.cumsum(jumps, axis=1), 8, per_pixel)
        residual = None
        if with_residual:
            q = quantise(_residual_splats(3 + trial % 4, 8 * gh, 8 * gw, trial), steps)
            residual = (q, steps)
        payloads = {}
        for coding in ("neighbour", "flagged", "best"):
            coded = encode_picture_frame(motion, residual, coding)
            decoded = decode_values(coded.payload, None, "m", "M")
            assert decoded.motion is not None and decoded.motion.per_pixel == per_pixel
            assert np.array_equal(decoded.motion.vectors, motion.vectors)
            if residual is not None:
                assert decoded.steps == steps
                assert np.array_equal(decoded.values, residual[0].select(coded.order).as_array())
            else:
                assert decoded.steps is None and decoded.values.shape == (0, 8)
            payloads[coding] = coded.payload
        assert payloads["flagged"][0] == FRAME_M_FLAGGED and payloads["neighbour"][0] != FRAME_M_FLAGGED
        assert payloads["flagged"][2] & MEDIAN_UNIT_BIT  # format 12.0: moving cells against a median
        assert len(payloads["best"]) == min(len(payloads["neighbour"]), len(payloads["flagged"]))
    with pytest.raises(ValueError, match="field coding"):
        encode_picture_frame(motion, None, "median")


def test_kind_5_payloads_cut_or_flipped_give_an_error_or_a_field() -> None:
    jumps = np.array([[[2, 0], [0, 0], [0, 0], [-3, 1]], [[0, 0], [0, 0], [0, 0], [0, 0]]])
    vectors = np.cumsum(jumps, axis=1)
    motion = MotionVectors(vectors, 16, 4)
    steps = QuantSteps.default()
    for residual in (None, (quantise(_residual_splats(4, 32, 64, 9), steps), steps)):
        coded = encode_picture_frame(motion, residual, "flagged")
        assert coded.payload[0] == FRAME_M_FLAGGED
        for unit in (3, 1 | 0x80, 2 | 0x80):  # no 1/3 pixels; the 8-tap bit with quarter pixels only
            bad_unit = bytearray(coded.payload)
            bad_unit[2] = unit
            with pytest.raises(FormatError, match=f"unit byte {unit} "):
                decode_values(bytes(bad_unit), None, "m")
        for cut in range(1, len(coded.payload) - 4):  # the header, the models, the body
            with contextlib.suppress(FormatError):
                decoded = decode_values(coded.payload[:cut], None, "m")
                assert decoded.motion is not None  # a cut body may still decode: never a crash
        for at in range(1, len(coded.payload)):
            data = bytearray(coded.payload)
            data[at] ^= 0x5A
            with contextlib.suppress(FormatError):
                decoded = decode_values(bytes(data), None, "m")
                assert decoded.motion is not None and len(decoded.values) == (0 if residual is None else 4)


def test_flags_split_by_the_last_field_round_trip_pay_and_need_that_field() -> None:
    """Format 13.0: a flagged field after an M-frame of the same grid splits its zero flags by how
    many of each cell and its four neighbours moved in that field (unit + 16). Where the moving
    cells stay about where they were (an object moving over a still background) that costs fewer
    bits than the plain flags; the decoder needs the same last field (none, or one of another
    size: a FormatError)."""
    rng = np.random.default_rng(11)
    gh, gw = 24, 32

    def field(down: int) -> MotionVectors:
        vectors = np.zeros((gh, gw, 2), dtype=np.int64)
        vectors[6 + down:18 + down, 8:24] = rng.integers(-3, 4, size=(12, 16, 2))
        return MotionVectors(vectors, 8, 4)

    first, second = field(0), field(1)
    m1 = encode_picture_frame(first, None, "flagged")
    m2 = encode_picture_frame(second, None, "flagged", m1.memory)
    assert not m1.payload[2] & TEMPORAL_FLAGS_BIT and m2.payload[2] & TEMPORAL_FLAGS_BIT
    memory = decode_values(m1.payload, None, "m", "M").memory
    assert memory is not None and np.array_equal(memory.moving, moving_cells(first.vectors))
    decoded = decode_values(m2.payload, None, "m", "M", memory)
    assert decoded.motion is not None and np.array_equal(decoded.motion.vectors, second.vectors)
    without = CodingMemory(memory.models, memory.steps)  # the same models, no last field
    plain = encode_picture_frame(second, None, "flagged", without)
    assert not plain.payload[2] & TEMPORAL_FLAGS_BIT
    assert len(m2.payload) < len(plain.payload)
    wider = without.after({}, None, MotionVectors(np.zeros((gh, gw + 1, 2), dtype=np.int64), 8, 4))
    for wrong in (without, wider):
        with pytest.raises(FormatError, match="last field"):
            decode_values(m2.payload, None, "m", "M", wrong)


def test_the_default_field_coding_writes_flagged_fields_that_decode_exactly(tmp_path: Path) -> None:
    """The pan of test_m_frames_are_chosen_on_a_pan... with the default field coding (overlapped
    cells off: kind 6 is tested below): its M-frames carry kind 5 (a rigid pan's field is nearly
    all zero residuals), decoded bit for bit also from the first M-frame on (a seek)."""
    frames, info = _pan_frames()
    out = tmp_path / "pan5.gsvc"
    _, recon = _encode_128x96(frames, info, out, field_coding=RDTuning().field_coding, overlapped_cells=False)
    _check_kind_decodes_exactly(out, recon, FRAME_M_FLAGGED)


def test_border_weights_blend_the_pixels_next_to_a_cell_edge() -> None:
    """k = cell // 8 pixels (at least 1) on each side of an edge blend, keeping (2k + 2j + 1) / 4k
    of their own cell's prediction; a cell of one pixel does not blend."""
    own, side = border_weights(8, 20)
    assert side.tolist() == [-1, 0, 0, 0, 0, 0, 0, 1] * 2 + [-1, 0, 0, 0]
    assert own.tolist() == [0.75, 1, 1, 1, 1, 1, 1, 0.75] * 2 + [0.75, 1, 1, 1]
    own, side = border_weights(32, 32)
    assert own[:4].tolist() == [0.5625, 0.6875, 0.8125, 0.9375]
    assert own[-4:].tolist() == own[:4][::-1].tolist()
    assert side[:4].tolist() == [-1] * 4 and side[-4:].tolist() == [1] * 4 and not side[4:-4].any()
    own, side = border_weights(1, 5)
    assert own.tolist() == [1.0] * 5 and not side.any()


def test_overlapped_cells_blend_only_at_edges_between_different_vectors() -> None:
    """An overlapped field is the plain move away from cell edges and wherever neighbouring vectors
    agree (a uniform field: the same bits); at an edge between two vectors the pixel takes 3/4 of
    its own cell's prediction and 1/4 of its neighbour's. The C kernel and numpy agree bit for bit."""
    rng = np.random.default_rng(11)
    picture = rng.random((3, 24, 32), dtype=np.float32)
    uniform = MotionVectors(np.tile([5, -6], (3, 4, 1)), 8, 4)
    same = move_picture(picture, replace(uniform, overlapped=True))
    assert np.array_equal(same, move_picture(picture, uniform))
    vectors = np.zeros((3, 4, 2), dtype=np.int64)
    vectors[:, 2:] = [2, 0]  # cells of columns 16.. read 2 pixels to the left
    plain = MotionVectors(vectors, 8)
    overlapped = replace(plain, overlapped=True)
    moved, blended = move_picture(picture, plain), move_picture(picture, overlapped)
    assert np.array_equal(move_picture_numpy(picture, overlapped), blended)
    changed = np.flatnonzero((moved != blended).any(axis=(0, 1)))
    assert changed.tolist() == [15, 16]  # the two columns at the one edge between different vectors
    assert np.allclose(blended[:, :, 15], 0.75 * picture[:, :, 15] + 0.25 * picture[:, :, 13], atol=1e-6)
    assert np.allclose(blended[:, :, 16], 0.75 * picture[:, :, 14] + 0.25 * picture[:, :, 16], atol=1e-6)
    for trial in range(6):  # random fields, quarter and whole pixels, ragged frames
        height, width, cell = 17 + 5 * trial, 23 + 7 * trial, (4, 8, 16)[trial % 3]
        field = MotionVectors(rng.integers(-12, 13, size=(*grid_shape(width, height, cell), 2)), cell,
                              (1, 4)[trial % 2], overlapped=True)
        image = rng.random((3, height, width), dtype=np.float32)
        assert np.array_equal(move_picture(image, field), move_picture_numpy(image, field))


@pytest.mark.parametrize("cell", [2, 3, 8, 16, 32])
def test_the_overlapped_c_kernel_reads_each_border_as_numpy_does(cell: int) -> None:
    """The C kernel reads each cell once over the cell and the k = max(1, cell // 8) pixels around
    it that differing neighbours blend with, a row of cells at a time, and skips what agrees: numpy
    bit for bit on frames whose last cells are cut (narrower than k too), one pixel wide or tall,
    for fields where only the horizontal, only the vertical or only a diagonal neighbour differs,
    quarter-pixel fields with whole-pixel vectors among them (through the cubic and the 8-tap
    filter), vectors reaching past the frame, and whatever the number of threads (each thread reads
    the rows on either side of its run)."""
    rng = np.random.default_rng(cell)
    k = max(1, cell // 8)
    sizes = [(2 * cell + 1, 3 * cell + k + 1), (3 * cell, 2 * cell + cell - 1), (1, 2 * cell + 5),
             (2 * cell + 3, 1), (cell, cell), (4 * cell + k - 1, 2 * cell + 1)]
    for height, width in sizes:
        gh, gw = grid_shape(width, height, cell)
        picture = rng.random((3, height, width), dtype=np.float32)
        base = rng.integers(-9, 10, size=2)
        fields = []
        mixed = rng.integers(-40, 41, size=(gh, gw, 2))
        mixed[rng.random((gh, gw)) < 0.4] *= 4  # whole pixels among quarter ones
        mixed[rng.random((gh, gw)) < 0.4] = base  # and repeated vectors
        fields.append((mixed, 4))
        columns = np.tile(base, (gh, gw, 1))
        columns[:, 1::2] += [1, 0]  # only the horizontal neighbours differ
        rows = np.tile(base, (gh, gw, 1))
        rows[1::2] += [0, -3]  # only the vertical ones
        lone = np.tile(base, (gh, gw, 1))
        lone[gh // 2, gw // 2] += [2, 1]  # one cell: its 8 neighbours blend with it, corners by diagonals
        diagonal = np.tile(base, (gh, gw, 1))
        diagonal[(np.arange(gh)[:, None] + np.arange(gw)[None, :]) % 2 == 1] += [-1, 1]
        fields += [(columns, 4), (rows, 4), (lone, 4), (diagonal, 4)]
        fields.append((rng.integers(-2 * cell, 2 * cell + 1, size=(gh, gw, 2)), 1))
        for (vectors, per_pixel), sharp in itertools.product(fields, (False, True)):
            if sharp and per_pixel == 1:
                continue
            motion = MotionVectors(np.ascontiguousarray(vectors), cell, per_pixel, True, sharp)
            expected = move_picture_numpy(picture, motion)
            for threads in (1, 2, 3):
                native = capi.move_picture(picture, motion.vectors, cell, per_pixel, threads=threads,
                                           overlapped=True, sharp=sharp)
                assert np.array_equal(native, expected), (height, width, per_pixel, sharp, threads)


def test_overlapped_fields_round_trip_as_kind_6(tmp_path: Path) -> None:
    """Kind 6 is kind 5 with the overlap: the field and residual splats come back with the flag
    set; the 6.0 coding cannot carry it; cut or flipped payloads give an error or a field. The
    default encoder writes kind 6 on a pan and decodes it bit for bit, also from a seek."""
    vectors = np.cumsum(np.array([[[2, 0], [0, 0], [-3, 1]], [[0, 0], [1, 0], [0, 0]]]), axis=1)
    motion = MotionVectors(vectors, 16, 4, overlapped=True)
    steps = QuantSteps.default()
    for residual in (None, (quantise(_residual_splats(4, 32, 48, 3), steps), steps)):
        coded = encode_picture_frame(motion, residual)
        assert coded.payload[0] == FRAME_M_OVERLAPPED
        decoded = decode_values(coded.payload, None, "m", "M")
        assert decoded.motion is not None and decoded.motion.overlapped and decoded.motion.per_pixel == 4
        assert np.array_equal(decoded.motion.vectors, vectors)
        assert len(decoded.values) == (0 if residual is None else 4)
        for at in range(1, len(coded.payload)):
            data = bytearray(coded.payload)
            data[at] ^= 0x5A
            with contextlib.suppress(FormatError):
                assert decode_values(bytes(data), None, "m").motion is not None
    with pytest.raises(ValueError, match="overlapped"):
        encode_picture_frame(motion, None, "neighbour")
    frames, info = _pan_frames()
    out = tmp_path / "pan6.gsvc"
    _, recon = _encode_128x96(frames, info, out, field_coding=RDTuning().field_coding)
    _check_kind_decodes_exactly(out, recon, FRAME_M_OVERLAPPED)


def test_an_m_frame_adds_residual_splats_where_the_moved_picture_misses(tmp_path: Path) -> None:
    """A pan in which a bright spot appears: moving the picture explains the pan, not the spot, so
    the encoder adds residual splats (kind 4) on a moved picture, and the decoder reproduces them."""
    with open_video(BUNDLED) as reader:
        info = reader.info
        source = next(iter(reader))
    frames = []
    yy, xx = np.mgrid[0:96, 0:128]
    for k in range(4):
        x, y = 100 + 2 * k, 60
        luma = source.y[y:y + 96, x:x + 128].astype(np.float32)
        if k >= 2:  # a spot of 6 px radius, brighter at k = 3
            luma = luma + (60.0 + 40 * (k - 2)) * np.exp(-((xx - 40) ** 2 + (yy - 50) ** 2) / 72.0)
        planes = (np.clip(luma, 0, 255).astype(np.uint8), source.u[y // 2:y // 2 + 48, x // 2:x // 2 + 64],
                  source.v[y // 2:y // 2 + 48, x // 2:x // 2 + 64])
        frames.append(Frame(tuple(np.ascontiguousarray(p) for p in planes), source.pix_fmt,
                            source.color_matrix, source.color_range, k))
    out = tmp_path / "spot.gsvc"
    # Without the far search: with it, vectors from far away copy bright texture onto the spot
    # for less than residual splats cost (plain M-frames), and this test is about kind 4.
    _, recon = _encode_128x96(frames, info, out, far_motion=False)
    _check_kind_decodes_exactly(out, recon, FRAME_M_RESIDUAL)


@pytest.mark.parametrize(("height", "width", "cell", "reach"),
                         [(48, 64, 8, 1), (50, 70, 16, 2), (37, 41, 8, 0), (100, 90, 32, 4)])
def test_window_sums_cover_each_cell_and_its_reach(height: int, width: int, cell: int, reach: int) -> None:
    """refine_field's per-cell sums of the weighted squared error over the cell and `reach` pixels
    around it (partial cells at the right and bottom edges, windows cut by the frame), against a
    sum over each window; one thread and two alike."""
    rng = np.random.default_rng(1)
    moved, image = (rng.random((3, height, width)).astype(np.float32) for _ in range(2))
    weights = np.array([0.75, 0.125, 0.125], dtype=np.float32)
    errors = np.tensordot(weights, (moved - image) ** 2, axes=1)
    gh, gw = -(-height // cell), -(-width // cell)
    want = np.zeros((gh, gw))
    for i, j in itertools.product(range(gh), range(gw)):
        y0, x0 = max(0, i * cell - reach), max(0, j * cell - reach)
        want[i, j] = errors[y0:(i + 1) * cell + reach, x0:(j + 1) * cell + reach].astype(np.float64).sum()
    got = window_sums(moved, image, weights, cell, reach, threads=1)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.array_equal(window_sums(moved, image, weights, cell, reach, threads=2), got)


@pytest.mark.parametrize("buckets", [False, True])
@pytest.mark.parametrize("median", [False, True])
@pytest.mark.parametrize("shape", [(6, 9), (1, 7), (5, 1), (2, 2)])
def test_a_cells_bits_are_every_bit_its_vector_changes(buckets: bool, median: bool,
                                                       shape: tuple[int, int]) -> None:
    """refine_field's bit model: changing one cell's vector, the others fixed, changes the field's
    estimated bits (each cell's residual as the codec codes it: median_residuals for format 12.0,
    else from the neighbour predictor; with `buckets`, each cell's flag priced by its bucket of
    the last field's moving cells) by exactly the change in that cell's field_bits_by_cell."""
    rng = np.random.default_rng(3)
    costs = VectorCosts(zero_bits=0.4, moving_bits=2.5, median=median)
    if buckets:
        costs = VectorCosts.flagged(0.6, median, rng.random(shape) < 0.4, tuple(rng.uniform(0.1, 0.9, 6)))
    zero_bits, moving_bits = costs.prices(*shape)

    def total(field: np.ndarray) -> float:
        if median:
            moving, residuals = median_residuals(field)
        else:
            residuals = (field - neighbour_predictor(field)).reshape(-1, 2)
            moving = (residuals != 0).any(-1)
            residuals = residuals[moving]
        components = (1.0 + 2.0 * np.log2(1.0 + np.abs(residuals))).sum()
        flags = moving_bits.reshape(-1)[moving].sum() + zero_bits.reshape(-1)[~moving].sum()
        return float(components + flags)

    for _ in range(40):
        field = rng.integers(-2, 3, size=(*shape, 2)) * (rng.random((*shape, 1)) < 0.6)
        cell = (int(rng.integers(shape[0])), int(rng.integers(shape[1])))
        changed = field.copy()
        changed[cell] = rng.integers(-3, 4, size=2)
        delta = field_bits_by_cell(changed, costs)[cell] - field_bits_by_cell(field, costs)[cell]
        assert total(changed) - total(field) == pytest.approx(delta, abs=1e-4)


@pytest.mark.parametrize("overlapped", [False, True])
def test_refining_a_noisy_field_makes_it_rigid_and_lowers_j(overlapped: bool) -> None:
    """A real picture moved 2 px right and 1 down, searched as a field whose vectors are off by a
    quarter pixel in a third of the cells: refine_field (checkerboard passes by D + lambda R)
    brings those cells back to the common vector, so J (weighted error + lambda x the payload's
    real bits) falls, and it never rises on a field that is already right."""
    y = _luma()[:64, :96].numpy()
    with open_video(BUNDLED) as reader:
        first = next(iter(reader))
    chroma = [np.kron(p[:32, :48].astype(np.float32) / 255, np.ones((2, 2), dtype=np.float32)) for p in
              (first.u, first.v)]
    reference = np.stack([y, *chroma]).astype(np.float32)
    true = MotionVectors(np.tile([8, 4], (8, 12, 1)), 8, 4, overlapped)
    image = move_picture(reference, true)
    rng = np.random.default_rng(2)
    noisy = true.vectors + rng.integers(-1, 2, size=true.vectors.shape) * (rng.random((8, 12, 1)) < 0.33)
    start = MotionVectors(noisy, 8, 4, overlapped)
    lam = lagrangian(30)
    weights = np.array([0.75, 0.125, 0.125], dtype=np.float32)

    def cost(motion: MotionVectors) -> float:
        error = float((weights[:, None, None] * (move_picture(reference, motion) - image) ** 2).sum())
        return error + lam * 8 * len(encode_picture_frame(motion).payload)

    refined = refine_field(reference, image, start, lam, weights)
    assert refined.overlapped == overlapped and refined.per_pixel == 4
    assert (refined.vectors != true.vectors).any(-1).sum() < (noisy != true.vectors).any(-1).sum() / 4
    assert cost(refined) < 0.8 * cost(start)
    again = refine_field(reference, image, true, lam, weights)
    assert np.array_equal(again.vectors, true.vectors)


def test_shared_model_choices_give_the_same_payloads() -> None:
    """An encoder weighing several residual sets beside one field shares the models chosen for the
    field's streams (EntropyWriter's choices): every payload is byte for byte the one coded alone,
    and the field's streams were chosen once (the shared table holds them after the first payload)."""
    rng = np.random.default_rng(11)
    jumps = rng.integers(-5, 6, size=(9, 12, 2)) * (rng.random((9, 12, 1)) < 0.3)
    motion = MotionVectors(np.cumsum(jumps, axis=1), 8, 4, overlapped=True)
    choices: ModelChoices = {}
    sizes = []
    for trial, scale in enumerate((1.0, 2.0, 4.0, 2.0)):
        steps = QuantSteps.default().scaled(scale)
        residual = (quantise(_residual_splats(5 + trial, 72, 96, trial), steps), steps)
        alone = encode_picture_frame(motion, residual, "best")
        shared = encode_picture_frame(motion, residual, "best", None, choices)
        assert shared.payload == alone.payload
        assert np.array_equal(shared.order.numpy(), alone.order.numpy())
        sizes.append(len(choices))
    field_only = encode_picture_frame(motion, None, "best", None, choices)
    assert field_only.payload == encode_picture_frame(motion, None, "best").payload
    assert len(choices) == sizes[-1]  # the field's streams alone: every model already chosen
    assert sizes[0] < sizes[1]  # new residual streams add theirs

"""The constant-quality (lambda) encoder: codec/encoder/rd.py, motion.py and the quality mode of gop.py.

Real crops of the bundled clip (always in the package), the fast preset, a few frames each.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import HEADS

from gsvc_cli.codec.bitstream.container import GsvcReader
from gsvc_cli.codec.bitstream.quantise import QuantSteps
from gsvc_cli.codec.decoder import decode_frames
from gsvc_cli.codec.encoder.colour_refit import splat_energy
from gsvc_cli.codec.encoder.gop import (
    CHANNEL_WEIGHTS,
    CUT_MARGIN_DB,
    Encoder,
    EncoderSettings,
    encode_frames,
    encode_video,
)
from gsvc_cli.codec.encoder.inter_fit import field_vectors
from gsvc_cli.codec.encoder.loss import loss_weights
from gsvc_cli.codec.encoder.motion import SEARCH_PIXELS, MotionField, block_motion
from gsvc_cli.codec.encoder.presets import get_preset
from gsvc_cli.codec.encoder.rate_control import (
    BPP_TOLERANCE,
    DB_PER_RATE_DOUBLING,
    QualitySteer,
    RateTarget,
    next_quality,
    next_scale,
    rate_slope,
)
from gsvc_cli.codec.encoder.rd import (
    RDTuning,
    change_bits,
    gaussian_overlap,
    lagrangian,
    replacement_cost,
    residual_products,
    weighted_sse,
)
from gsvc_cli.codec.splats import Splats
from gsvc_cli.metrics.psnr import frame_psnr
from gsvc_cli.render import render
from gsvc_cli.video import Frame, VideoInfo, open_video

BUNDLED = next((Path(__file__).resolve().parents[1] / "gsvc_cli" / "data").glob("*.y4m"))


def crops(windows: list[tuple[int, int, int]], width: int = 64, height: int = 48
          ) -> tuple[list[Frame], VideoInfo]:
    """Frames cut from the bundled clip: one per (frame, x, y) window (even offsets)."""
    with open_video(BUNDLED) as reader:
        info = reader.info
        source = list(reader)
    out = []
    for k, (index, x, y) in enumerate(windows):
        f = source[index]
        planes = (f.y[y:y + height, x:x + width], f.u[y // 2:(y + height) // 2, x // 2:(x + width) // 2],
                  f.v[y // 2:(y + height) // 2, x // 2:(x + width) // 2])
        out.append(Frame(tuple(np.ascontiguousarray(p) for p in planes), f.pix_fmt, f.color_matrix,
                         f.color_range, k))
    return out, info.with_(width=width, height=height, frame_count=len(out))


def encode(frames: list[Frame], info: VideoInfo, out: Path, tuning: RDTuning = RDTuning(), **target):
    recon: dict[int, torch.Tensor] = {}
    settings = EncoderSettings(RateTarget(**target), preset="fast", tuning=tuning)
    summary = encode_video(iter(frames), info, out, settings, frame_count=len(frames),
                           on_frame=lambda k, img: recon.__setitem__(k, img.clone()))
    return summary, recon


# ----------------------------------------------------------------------------------------------
# the closed forms behind the per-splat decisions

def _splats(seed: int, n: int, size: int) -> Splats:
    g = torch.Generator().manual_seed(seed)
    means = 8 + torch.rand(n, 2, generator=g) * (size - 16)
    chol = torch.stack([1.5 + 2 * torch.rand(n, generator=g), torch.rand(n, generator=g) - 0.5,
                        1.5 + 2 * torch.rand(n, generator=g)], 1)
    return Splats(means, chol, torch.rand(n, 3, generator=g) - 0.2)


def test_gaussian_overlap_matches_the_pixel_sum() -> None:
    a, b = _splats(1, 6, 64), _splats(2, 6, 64)
    b = Splats(a.means + torch.tensor([1.5, -1.0]), b.chol, b.colors)  # overlapping pairs
    assert torch.allclose(gaussian_overlap(a, a), splat_energy(a.chol), rtol=1e-5)
    for i in range(len(a)):
        wa = render(a.means[i:i + 1], a.chol[i:i + 1], torch.ones(1, 3), 64, 64, backend="reference")[0]
        wb = render(b.means[i:i + 1], b.chol[i:i + 1], torch.ones(1, 3), 64, 64, backend="reference")[0]
        assert float(gaussian_overlap(a.select([i]), b.select([i]))) == pytest.approx(float((wa * wb).sum()),
                                                                                      rel=0.05)


def test_replacement_cost_predicts_the_real_error_change() -> None:
    """Put one splat back to an older version: the closed form against a real render."""
    size = 48
    scene = _splats(3, 30, size)
    image = render(scene.means, scene.chol, scene.colors, size, size).clamp(0, 1)
    weights = loss_weights((6, 1, 1), "cpu")
    new = _splats(4, 30, size)
    old = Splats(new.means + 0.7, new.chol * 1.1, new.colors * 0.8)
    residual = render(new.means, new.chol, new.colors, size, size) - image
    cost = replacement_cost(new, old, residual_products(new, residual), residual_products(old, residual),
                            weights)

    def sse(s: Splats) -> float:
        err = (render(s.means, s.chol, s.colors, size, size) - image) ** 2
        return float((err.sum(dim=(1, 2)) * weights).sum())

    base = sse(new)
    for i in (0, 7, 19):
        swapped = Splats(new.means.clone(), new.chol.clone(), new.colors.clone())
        swapped.means[i], swapped.chol[i], swapped.colors[i] = old.means[i], old.chol[i], old.colors[i]
        real = sse(swapped) - base
        assert float(cost[i]) == pytest.approx(real, rel=0.1, abs=1e-3 * base)


def test_change_bits_charge_what_moved() -> None:
    deltas = np.array([[1, 0, 0, 0, 0, 0, 0, 0], [3, -2, 0, 0, 0, 5, 5, 5], [0, 0, 0, 0, 0, 1, 0, 0]])
    bits = change_bits(deltas, n_survivors=40)
    assert bits.shape == (3,) and (bits > 0).all()
    assert bits[1] > bits[0]  # two groups and more columns cost more than one column


def test_lambda_falls_with_quality() -> None:
    assert lagrangian(40) < lagrangian(30) < lagrangian(20)
    assert lagrangian(30) == pytest.approx(2 * math.log(2) * 1e-3)


def test_next_quality_searches_a_monotonic_curve() -> None:
    def rate(q: float) -> float:  # a made-up rate curve, rising with quality
        return 0.05 * 2 ** (q / 8.0)

    tried: dict[float, float] = {}
    q: float | None = 20.0
    for _ in range(8):
        assert q is not None
        tried[q] = rate(q)
        q = next_quality(tried, 0.7)
        if q is None:
            break
    assert q is None and any(abs(b / 0.7 - 1) <= BPP_TOLERANCE for b in tried.values())
    assert len(tried) <= 6


def test_quality_steer_follows_the_scaled_reference() -> None:
    steer = QualitySteer((1000.0, 500.0, 500.0), quality=30.0, scale=0.5, slope=4.0)
    assert steer.quality_at(0, 0.0) == pytest.approx(26.0)  # half the rate: one doubling down
    assert steer.quality_at(1, 500.0) == pytest.approx(26.0)  # on plan: no correction
    # 146 bits over the plan: the two frames left get (1000 - 646) / 1000 of their reference bits
    assert steer.quality_at(1, 646.4) == pytest.approx(24.0, abs=1e-3)
    assert steer.quality_at(2, 750.0) == pytest.approx(26.0)  # the last frame: what is left of 1000
    assert steer.quality_at(1, 1e9) == pytest.approx(24.0)  # never more than STEER_RANGE from 30
    assert steer.quality_at(2, 1.0) == pytest.approx(34.0, abs=1e-2)  # 999 left for 500: a doubling up


def test_rate_slope_fits_noisy_passes() -> None:
    assert rate_slope({30.0: 0.2, 34.0: 0.4}) == pytest.approx(4.0)
    assert rate_slope({30.0: 0.2, 31.0: 0.31, 31.5: 0.27, 34.0: 0.4}) > 0  # non-monotonic inside
    assert rate_slope({30.0: 0.3, 31.0: 0.2}) == pytest.approx(DB_PER_RATE_DOUBLING)  # falling: typical


def test_a_steered_pass_moves_the_rate_the_way_it_is_asked(tmp_path: Path) -> None:
    """A steered pass asked for 0.6x / 1.6x of a constant-quality pass's bits spends fewer / more."""
    frames, info = crops([(k, 150, 60) for k in range(4)], width=128, height=96)
    settings = EncoderSettings(RateTarget(quality=30.0), "fast")

    def frame_bits(steer: QualitySteer | None) -> list[float]:
        return [float(rep.bits) for _, _, rep, _ in encode_frames(iter(frames), info, settings, frame_count=4,
                                                                   overhead_bytes=0, steer=steer)]

    reference = frame_bits(None)
    down = frame_bits(QualitySteer(tuple(reference), 30.0, 0.6, DB_PER_RATE_DOUBLING))
    up = frame_bits(QualitySteer(tuple(reference), 30.0, 1.6, DB_PER_RATE_DOUBLING))
    assert sum(down) < 0.9 * sum(reference) < 0.9 * sum(up)


def test_next_scale_follows_the_measured_gain() -> None:
    assert next_scale([(1.0, 1000.0)], 1100.0) == pytest.approx(1.1)  # one pass: proportional
    # the steer spent only half the asked change (gain 0.5 in log-log): ask for twice the step
    assert next_scale([(1.0, 1000.0), (1.1, 1000.0 * 1.1 ** 0.5)], 1100.0) == pytest.approx(1.21)
    # bracketed: the secant between the passes on either side, not the farther same-side one
    points = [(1.0, 1000.0), (1.2, 1060.0), (1.3, 1140.0)]
    s = next_scale(points, 1100.0)
    assert 1.2 < s < 1.3
    assert next_scale([(1.0, 1000.0), (1.1, 990.0)], 1100.0) == pytest.approx(1.1 * 1100 / 990)  # no gain


def test_a_steered_pass_keeps_the_reference_pattern() -> None:
    """Frame types given to the steer are kept whatever the costs say (a cut coded as a P-frame,
    a still frame as an I-frame), and at scale 1 the steered pass is the reference, bit for bit."""
    frames, info = crops([(k, 200, 40) for k in range(3)] + [(k, 20, 120) for k in range(2)])
    settings = EncoderSettings(RateTarget(quality=33.0), "fast")

    def run(steer: QualitySteer | None) -> tuple[str, list[float]]:
        reps = [rep for _, _, rep, _ in encode_frames(iter(frames), info, settings, frame_count=5,
                                                      overhead_bytes=0, steer=steer)]
        return "".join(r.frame_type for r in reps), [float(r.bits) for r in reps]

    types, bits = run(None)
    assert types[0] == types[3] == "I" and set(types[1:3] + types[4]) <= {"P", "M"}
    assert run(QualitySteer(tuple(bits), 33.0, 1.0, DB_PER_RATE_DOUBLING, types)) == (types, bits)
    forced, _ = run(QualitySteer(tuple(bits), 33.0, 1.0, DB_PER_RATE_DOUBLING, "IIPPP"))
    assert forced == "IIPPP"
    forced, _ = run(QualitySteer(tuple(bits), 33.0, 1.0, DB_PER_RATE_DOUBLING, "IMPMM"))
    assert forced == "IMPMM"


def test_block_motion_finds_a_translation() -> None:
    frames, _ = crops([(0, 100, 40), (0, 100, 40)], width=128, height=96)
    luma = torch.from_numpy(frames[0].y.astype(np.float32) / 255)
    moved = torch.roll(luma, shifts=(-2, 3), dims=(0, 1))  # content moves 3 px right, 2 px up
    field = block_motion(luma, moved, block=16)
    assert field.spacing == 16
    inner = field.vectors[1:-1, 1:-1].reshape(-1, 2)
    assert (inner.round() == torch.tensor([3.0, -2.0])).all(dim=1).float().mean() > 0.8
    still = block_motion(luma, luma, block=16)
    assert bool((still.vectors == 0).all())  # static stays exactly still: a still splat costs nothing


def test_motion_of_a_large_frame_lands_where_the_splats_are() -> None:
    """A frame big enough to be searched downscaled (960x720, at 1/3) gets 15-pixel tiles, not 16:
    the field must say so, and a splat must read the tile under it (it was read 16/15 too far out,
    60 pixels at the right edge of a 1080p frame)."""
    frames, _ = crops([(0, 0, 0)], width=320, height=240)
    small = torch.from_numpy(frames[0].y.astype(np.float32) / 255)[None, None]
    luma = F.interpolate(small, scale_factor=3, mode="bilinear", align_corners=False)[0, 0]
    field = block_motion(luma, torch.roll(luma, shifts=6, dims=1), block=16)
    assert field.spacing == 15 and field.vectors.shape[:2] == (math.ceil(720 / 15), math.ceil(960 / 15))
    # A field whose x-motion is the tile's column index: read at x, it must give the column under x.
    columns = torch.arange(64, dtype=torch.float32)
    ramp = MotionField(torch.stack([columns.expand(48, 64), torch.zeros(48, 64)], dim=-1), 15)
    steps = dataclasses.replace(QuantSteps.default(), mean=1 / 64)  # fine enough for atol 0.05
    carried = field_vectors(ramp.vectors, ramp.spacing, steps)
    xs = np.array([100.0, 500.0, 900.0, 920.0])
    centres = np.round(np.stack([xs, np.full_like(xs, 360.0)], 1) / steps.mean).astype(np.int64)
    read = carried.at(centres)[:, 0] * steps.mean
    assert np.allclose(read, xs / 15 - 0.5, atol=0.05), read


# ----------------------------------------------------------------------------------------------
# the quality mode end to end

def test_higher_quality_gives_more_bits_and_more_psnr(tmp_path: Path) -> None:
    frames, info = crops([(0, 200, 40), (1, 200, 40), (2, 200, 40)])
    low, _ = encode(frames, info, tmp_path / "low.gsvc", quality=28)
    high, _ = encode(frames, info, tmp_path / "high.gsvc", quality=38)
    assert high.file_bytes > low.file_bytes
    assert high.mean_psnr > low.mean_psnr + 1.0


def test_the_i_frame_count_follows_quality_inside_the_no_refit_band() -> None:
    """Count-model answers close to the fitted count (no refit) still move the coded count, so rate
    and quality rise with Q there; with the switch off, those qualities all code the fitted count."""
    frames, info = crops([(0, 200, 40)])

    steps_then = 250 / get_preset("fast").small_intra_steps

    def code(quality: float, follow: bool) -> tuple[int, int, float]:
        settings = EncoderSettings(RateTarget(quality=quality), preset="fast",
                                   tuning=RDTuning(count_follows_lambda=follow, ip_lambda_ratio=1.0,
                                                   intra_steps_scale=steps_then, intra_lr_scale=1.0,
                                                   intra_anneal_steps=0))
        encoder = Encoder(info, settings, 1, 0)
        encoder.intra_count = 50  # the first fit's count; every answer below is within the band
        # (at the I-frame's lambda equal to lambda, and in fast's 250 steps of when this test was
        # written: the band is what this test is about)
        _, rep, _ = encoder.encode(0, frames[0])
        return rep.n_splats, rep.bits, rep.psnr

    qualities = (33.0, 34.0, 35.0)
    followed = [code(q, True) for q in qualities]
    assert [c for c, _, _ in followed] == sorted({c for c, _, _ in followed}), followed
    assert [b for _, b, _ in followed] == sorted({b for _, b, _ in followed}), followed
    assert followed[-1][2] > followed[0][2]
    assert len({code(q, False) for q in qualities}) == 1


def test_a_coarse_count_probe_refits_the_coarse_stage_not_the_whole_fit(monkeypatch) -> None:
    """coarse_count_probe on frames fitted coarse to fine (here a crop, with the coarse stage's
    size limit lowered): a probe that agrees with the count codes exactly what the whole fit alone
    codes; a count far off is replaced after a coarse stage, so one whole fit runs, not two."""
    import gsvc_cli.codec.encoder.fitting as fitting

    frames, info = crops([(0, 200, 40)])
    whole_fits: list[int] = []
    real_fit = fitting.fit_frame

    def counted(image, count, init=None, **kwargs):
        if image.shape[-1] == info.width and kwargs.get("param_transform") is None:
            whole_fits.append(count)  # at full size and not the fine-tune: a whole fit's fine stage
        return real_fit(image, count, init, **kwargs)

    monkeypatch.setattr("gsvc_cli.codec.encoder.gop.fit_frame", counted)

    def code(probe: bool, count: int) -> tuple[bytes, list[int]]:
        settings = EncoderSettings(RateTarget(quality=33.0), preset="fast",
                                   tuning=RDTuning(coarse_count_probe=probe))
        encoder = Encoder(info, settings, 1, 0)
        intra = dataclasses.replace(encoder.preset.intra, coarse_min_pixels=1000, max_steps=60)
        encoder.preset = dataclasses.replace(encoder.preset, intra=intra)
        encoder.intra_count = count
        whole_fits.clear()
        coded, _, _ = encoder.encode(0, frames[0])
        return coded.payload, list(whole_fits)

    plain, fits = code(False, 80)
    assert len(fits) == 1  # 80 splats is near the answer: no refit
    assert code(True, 80) == (plain, fits)
    far_plain, far_fits = code(False, 40)
    assert len(far_fits) == 2 and far_fits[0] == 40  # a whole fit at 40, then one at the answer
    _, probed = code(True, 40)
    assert len(probed) == 1 and probed[0] != 40  # the coarse stage moved the count before any whole fit
    assert abs(math.log2(probed[0] / far_fits[1])) < 0.5


def test_decoder_reproduces_the_quality_mode_with_motion(tmp_path: Path) -> None:
    """A pan (the window moves 2 px a frame): motion-compensated P-frames (and, where they cost less,
    M-frames), decoded bit for bit."""
    frames, info = crops([(0, 180 + 2 * k, 40) for k in range(4)])
    for tuning in (RDTuning(), RDTuning(picture_frames=False)):
        summary, recon = encode(frames, info, tmp_path / "pan.gsvc", tuning, quality=33)
        types = "".join(f.frame_type for f in summary.frames)
        assert types[0] == "I" and set(types[1:]) <= ({"P", "M"} if tuning.picture_frames else {"P"})
        with GsvcReader(tmp_path / "pan.gsvc") as reader:
            decoded = list(decode_frames(reader))
        for d in decoded:
            assert np.array_equal(d.image, recon[d.index].numpy()), f"frame {d.index} drifted"
        (tmp_path / "pan.gsvc").unlink()


def test_a_luma_only_field_polish_weighs_luma_and_still_decodes(tmp_path: Path, monkeypatch) -> None:
    """refine_luma_only: the chosen M-frame field is polished on the luma plane alone (one plane
    moved per trial, not three), and the M-frames it makes decode bit for bit."""
    import gsvc_cli.codec.encoder.gop as gop

    planes: list[int] = []
    real_refine = gop.refine_field

    def spy(reference, image, motion, *args, **kwargs):
        planes.append(reference.shape[0])
        assert image.shape[0] == reference.shape[0] == len(args[1])  # args: lam, weights, ...
        return real_refine(reference, image, motion, *args, **kwargs)

    monkeypatch.setattr(gop, "refine_field", spy)
    frames, info = crops([(0, 180 + 2 * k, 40) for k in range(3)])
    for luma_only in (False, True):
        planes.clear()
        tuning = RDTuning(refine_luma_only=luma_only, intra_steps_scale=0.1, picture_residual="")  # quick
        summary, recon = encode(frames, info, tmp_path / f"pan{luma_only}.gsvc", tuning, quality=30)
        assert "M" in "".join(f.frame_type for f in summary.frames) and planes
        assert set(planes) == ({1} if luma_only else {3})
        with GsvcReader(tmp_path / f"pan{luma_only}.gsvc") as reader:
            for d in decode_frames(reader):
                assert np.array_equal(d.image, recon[d.index].numpy()), f"frame {d.index} drifted"


def test_a_static_clip_costs_a_few_bytes_and_loses_nothing(tmp_path: Path) -> None:
    """One frame repeated: every later frame is a skip (a P-frame that changes nothing or an M-frame
    that moves nothing: a few bytes, record included) unless a change pays for itself, so quality
    never falls along the GOP. (It does not build up either at these settings: after an RD-optimal
    I-frame no refinement pays for its bits; see the issue notes.)"""
    frames, info = crops([(0, 200, 40)] * 6)
    summary, _ = encode(frames, info, tmp_path / "still.gsvc", quality=33)
    types = "".join(f.frame_type for f in summary.frames)
    assert types[0] == "I" and set(types[1:]) <= {"P", "M"}
    assert max(f.bits for f in summary.frames[1:]) <= 8 * 32
    psnrs = [f.psnr for f in summary.frames]
    assert all(b >= a - 1e-9 for a, b in zip(psnrs, psnrs[1:], strict=False))


def test_a_cut_becomes_an_i_frame_and_nothing_else(tmp_path: Path) -> None:
    """Three frames of one face, then three of another part of the picture: one I-frame at the cut."""
    frames, info = crops([(k, 200, 40) for k in range(3)] + [(k, 20, 120) for k in range(3)])
    summary, _ = encode(frames, info, tmp_path / "cut.gsvc", quality=33)
    types = "".join(f.frame_type for f in summary.frames)
    assert types[0] == types[3] == "I" and "I" not in types[1:3] + types[4:]


def test_bpp_search_lands_within_one_percent(tmp_path: Path) -> None:
    """On a 128x96 crop: on tiny crops (64x48, a few dozen splats) the rate moves in jumps of several
    percent between neighbouring qualities, and 1% cannot always be hit."""
    frames, info = crops([(k, 150, 60) for k in range(3)], width=128, height=96)
    out = tmp_path / "bpp.gsvc"
    summary = encode_video(lambda: iter(frames), info, out, EncoderSettings(RateTarget(bpp=1.2), "fast"),
                           frame_count=len(frames))
    real = 8 * out.stat().st_size / (info.width * info.height * len(frames))
    assert real == pytest.approx(summary.bpp)
    assert abs(real / 1.2 - 1) <= BPP_TOLERANCE
    assert summary.quality is not None and summary.passes >= 1
    assert not [p for p in tmp_path.iterdir() if p.name != "bpp.gsvc"]  # no pass left behind


def test_a_picture_bpp_search_lands_by_splat_count(tmp_path: Path) -> None:
    """A one-frame input: qualities 34-36 all code the same I-frame count (the count model's answers
    fall inside its no-refit band), so no quality lands; a pass at a splat count from the secant does."""
    frames, info = crops([(0, 150, 60)], width=128, height=96)
    out = tmp_path / "picture.gsvc"
    summary = encode_video(lambda: iter(frames), info, out, EncoderSettings(RateTarget(bpp=1.0), "fast"),
                           frame_count=1)
    real = 8 * out.stat().st_size / (info.width * info.height)
    assert abs(real / 1.0 - 1) <= BPP_TOLERANCE, real
    assert summary.passes > 1
    with GsvcReader(out) as reader:
        assert len(list(decode_frames(reader))) == 1
    assert not [p for p in tmp_path.iterdir() if p.name != "picture.gsvc"]


def test_a_cut_is_told_by_the_moved_picture() -> None:
    """The best moved picture of another part of the frame is barely better than the new frame's
    own 40x40 block means (a cut: an I-frame, whatever J says of an M-frame with residual splats);
    the same window moved by 2 px is far better (no cut)."""
    frames, _ = crops([(0, 200, 40), (0, 202, 40), (0, 20, 120)])
    enc = _encoder()
    enc.picture = frames[0].to_yuv444_float()
    enc._picture_rd(1, frames[1].to_yuv444_float())
    assert enc.moved_margin_db > CUT_MARGIN_DB + 3 and not enc._moved_picture_is_cut()
    enc._picture_rd(2, frames[2].to_yuv444_float())
    assert enc.moved_margin_db < CUT_MARGIN_DB and enc._moved_picture_is_cut()
    enc.settings = dataclasses.replace(enc.settings, tuning=RDTuning(cut_by_picture=False))
    assert not enc._moved_picture_is_cut()  # off: J decides
    enc.settings = dataclasses.replace(enc.settings, tuning=RDTuning(), scenecut_db=0.0)
    assert not enc._moved_picture_is_cut()  # --scenecut 0


def test_cell_memory_searches_all_sizes_now_and_then_and_the_winners_between() -> None:
    """Large frames with cell_memory 4: frame 1 searches every block size, frames 2-4 only the
    sizes that won since, frame 5 all again. Frames of at most SEARCH_PIXELS, or cell_memory 0,
    search all on every frame; _picture_rd records its winner."""
    enc = _encoder(RDTuning(cell_memory=4), large=True)
    assert enc._cells_to_try(1) == [8, 16, 32]
    enc.cells_won.add(16)  # frame 1's field at 16 px won
    assert [enc._cells_to_try(index) for index in (2, 3, 4)] == [[16]] * 3
    assert enc._cells_to_try(5) == [8, 16, 32]
    enc.cells_won.update((16, 8))  # frame 5's field at 16 px won, then one at 8 px
    assert enc._cells_to_try(6) == [8, 16]
    for other in (_encoder(RDTuning(cell_memory=4)), _encoder(large=True)):
        other.cells_won.add(16)
        assert all(other._cells_to_try(i) == [8, 16, 32] for i in range(1, 6))
    frames, _ = crops([(0, 200, 40), (0, 202, 40)])
    small = _encoder(RDTuning(cell_memory=4))
    small.picture = frames[0].to_yuv444_float()
    small._picture_rd(1, frames[1].to_yuv444_float())
    assert small.searched_field is not None and small.cells_won == {small.searched_field.cell}


def test_preset_fast_fits_small_i_frames_longer() -> None:
    """Preset fast: 2400 I-fit steps at twice the learning rates, with a decay on the plateau, on a
    frame fitted at full size; 250 at the preset's own rates on one fitted coarse to fine (1280x720
    and up); intra_steps_scale multiplies the first only (0.5: 1200)."""
    frames, info = crops([(0, 200, 40)])
    large = info.with_(width=1280, height=720)
    own = get_preset("fast").intra
    for tuning, small_steps in ((RDTuning(), 2400), (RDTuning(intra_steps_scale=0.5), 1200)):
        settings = EncoderSettings(RateTarget(quality=30), "fast", tuning=tuning)
        small_fit = Encoder(info, settings, 8, 64).preset.intra
        large_fit = Encoder(large, settings, 8, 64).preset.intra
        assert small_fit.max_steps == small_steps and large_fit.max_steps == 250
        assert small_fit.anneal_steps == 200 and large_fit.anneal_steps == 0
        assert (small_fit.lr_means, small_fit.lr_colors) == (2 * own.lr_means, 2 * own.lr_colors)
        assert (large_fit.lr_means, large_fit.lr_colors) == (own.lr_means, own.lr_colors)
    assert [get_preset(p).small_intra_steps for p in ("fast", "medium", "slow")] == [2400, 2400, 3000]


def test_large_frames_take_their_own_residual_densities_and_steps() -> None:
    """Below the preset's residual_max_pixels (fast: 1280x720) an M-frame's residual splats follow
    picture_residual and fit at most RESIDUAL_MAX_STEPS steps; at and above it, large_picture_residual
    (by default two densities, 2000 and 700 pixels a splat, in 60 steps, the coarse stage on a
    quarter-size frame: large_residual_coarse_factor), large_residual_steps and
    large_residual_refit, with their own coarse and fine stages and inner refits
    (large_residual_coarse, large_residual_fine, large_residual_inner_refit). Medium has no such
    limit."""
    from gsvc_cli.codec.encoder.gop import RESIDUAL_MAX_STEPS

    frames, info = crops([(0, 200, 40)])
    large = info.with_(width=1280, height=720)
    tuning = RDTuning(large_picture_residual="3000", large_residual_steps=40, large_residual_refit=6,
                      large_residual_coarse=2.5, large_residual_fine=0.2, large_residual_inner_refit=3)
    for preset, size, densities, steps in (("fast", info, tuning.picture_residual, RESIDUAL_MAX_STEPS),
                                           ("fast", large, "3000", 40),
                                           ("medium", large, tuning.picture_residual, RESIDUAL_MAX_STEPS)):
        enc = Encoder(size, EncoderSettings(RateTarget(quality=30), preset, tuning=tuning), 8, 64)
        config = enc.residual_config
        assert (enc.residual_densities, config.max_steps) == (densities, steps)
        intra = enc.preset.intra
        own = (6, 2.5, 0.2, 3) if steps == 40 else (intra.final_refit_iters, intra.coarse_steps,
                                                    intra.fine_steps, intra.refit_iters)
        assert (config.final_refit_iters, config.coarse_steps, config.fine_steps, config.refit_iters) == own
    default = Encoder(large, EncoderSettings(RateTarget(quality=30), "fast"), 8, 64)
    config = default.residual_config
    assert (default.residual_densities, config.max_steps, config.coarse_factor) == ("700", 60, 4)
    tuning = default.settings.tuning
    assert default.extra_densities == "300"
    assert (tuning.residual_extra_gate, tuning.residual_extra_after_prune) == (1.0, True)
    small = Encoder(info, EncoderSettings(RateTarget(quality=30), "fast"), 8, 64)
    assert (small.residual_densities, small.extra_densities) == ("2000,700,250", "100")


def test_a_real_i_fit_on_a_large_frame_runs_only_near_the_last_fit(monkeypatch) -> None:
    """On frames fitted coarse to fine, the real I-frame trial runs only when the inter frame's J
    exceeds large_trial_bound x p_preference x the last real I-fit's J (not the GOP's estimate):
    below, no fit at all; above, the full fit (no short one). Bound 0: every trial runs."""
    import gsvc_cli.codec.encoder.gop as gop

    frames, info = crops([(0, 200, 40)])
    large = info.with_(width=1280, height=720)
    tuning = RDTuning(large_trial_bound=0.75)
    enc = Encoder(large, EncoderSettings(RateTarget(quality=30), "fast", tuning=tuning), 8, 64)
    enc.intra_count, enc.intra_cost, enc.last_fit_j = 5000, (1000.0, 2000.0), 500.0
    limit = 0.75 * tuning.p_preference * 500.0
    monkeypatch.setattr(gop, "fit_frame", lambda *a, **k: pytest.fail("no fit on a large frame"))
    image = torch.zeros(3, 720, 1280)
    assert not enc._intra_may_win(3, image, 0.99 * limit)
    assert enc._intra_may_win(3, image, 1.01 * limit)
    enc.settings = dataclasses.replace(enc.settings, tuning=RDTuning(large_trial_bound=0.0))
    assert enc._intra_may_win(3, image, 1e-9)


def _skips_after_loss(enc: Encoder, p_over_m: float) -> int:
    """A P-fit costing p_over_m x its M-frame, then how many frames skip the P-fit before the next."""
    enc.p_over_m = p_over_m
    enc._note_p_over_m()
    skipped = 0
    while enc._p_fit_pointless():
        skipped += 1
    return skipped


def test_p_fits_that_keep_losing_are_tried_ever_less_often() -> None:
    """m_skip_backoff 12 on a large frame: runs of 3, 6, 12, 12 skipped P-fits while each try loses
    by more than m_skip_ratio; one that does not lose so resets the run (and skips nothing). Off,
    or on a frame of at most SEARCH_PIXELS: always 3."""
    enc = _encoder(RDTuning(m_skip_backoff=12), large=True)
    assert [_skips_after_loss(enc, 3.0) for _ in range(4)] == [3, 6, 12, 12]
    assert _skips_after_loss(enc, 1.0) == 0
    assert _skips_after_loss(enc, 3.0) == 3
    for off in (_encoder(RDTuning(m_skip_backoff=0), large=True), _encoder()):  # off; a small frame
        assert [_skips_after_loss(off, 3.0) for _ in range(4)] == [3, 3, 3, 3]


def test_a_run_of_skipped_p_fits_outlasts_an_i_frame_on_large_frames() -> None:
    """m_skip_over_intra: on a large frame whose P-fits lost by far, an I-frame leaves the run of
    skips going (the frame after it skips the P-fit); switched off, or on a small frame, or with no
    far loss yet, the I-frame's fresh splats make the next P-fit worth trying."""
    cases = ((RDTuning(), True, 2, True), (RDTuning(m_skip_over_intra=False), True, 2, False),
             (RDTuning(), False, 2, False), (RDTuning(), True, 0, False))
    for tuning, large, losses, skips in cases:
        enc = _encoder(tuning, large=large)
        for _ in range(losses):
            enc.p_over_m = 3.0
            enc._note_p_over_m()
        enc.p_fits_skipped = 0
        enc._p_fits_after_intra()
        assert enc._p_fit_pointless() is skips


def _encoder(tuning: RDTuning = RDTuning(), large: bool = False) -> Encoder:
    """An encoder of 64x48 crops, or of 480x272 frames (more than SEARCH_PIXELS) with `large`."""
    frames, info = crops([(0, 200, 40)])
    if large:
        info = info.with_(width=480, height=272)
        assert info.width * info.height > SEARCH_PIXELS
    return Encoder(info, EncoderSettings(RateTarget(quality=30), "fast", tuning=tuning), 8, 64)


def test_clear_p_losses_after_i_frames_skip_the_next_p_fits() -> None:
    """Two P-fits in a row, each right after an I-frame, losing by more than p_clear_loss: the next
    p_skip_frames frames skip the P-fit. A narrow loss, a loss deeper in a GOP or the switch off
    count nothing."""
    tuning = RDTuning()
    enc = _encoder(tuning)
    enc.gop_length = 1
    enc._note_p_attempt(tuning.p_clear_loss + 0.1)
    assert enc.p_skips_left == 0
    enc._note_p_attempt(tuning.p_clear_loss + 0.1)
    assert enc.p_skips_left == tuning.p_skip_frames
    narrow = _encoder(tuning)
    narrow.gop_length = 1
    for ratio in (tuning.p_clear_loss + 0.1, tuning.p_clear_loss - 0.1, tuning.p_clear_loss + 0.1):
        narrow._note_p_attempt(ratio)
    assert narrow.p_skips_left == 0
    deep = _encoder(tuning)
    deep.gop_length = 2
    for _ in range(3):
        deep._note_p_attempt(10.0)
    assert deep.p_skips_left == 0
    off = _encoder(dataclasses.replace(tuning, p_skip_losses=0))
    off.gop_length = 1
    for _ in range(3):
        off._note_p_attempt(10.0)
    assert off.p_skips_left == 0


def test_a_gop_refresh_follows_a_run_of_frames_above_the_mean_cost() -> None:
    """refresh_run 2: an I-frame once two inter frames in a row cost more (J) than the mean J per
    frame since the last I-frame (that I-frame included); one frame above the mean, a steered
    pass (frame type given) or the switch off (the default) refresh nothing."""
    enc = _encoder(RDTuning(refresh_run=2))
    for cost in (100.0, 40.0, 50.0):  # the I-frame's J, then two inter frames: mean 63.3
        enc._count_cost(cost)
    assert not enc._refresh_due(70.0, None)  # the first frame above the mean
    enc._count_cost(70.0)  # mean 65
    assert not enc._refresh_due(60.0, None)  # below it: the run starts again
    enc._count_cost(60.0)  # mean 64
    assert not enc._refresh_due(65.0, None)
    assert enc._refresh_due(66.0, None)  # two in a row
    steered = _encoder(RDTuning(refresh_run=1))
    for cost in (100.0, 40.0, 50.0):
        steered._count_cost(cost)
    assert not steered._refresh_due(90.0, "P") and steered._refresh_due(90.0, None)
    off = _encoder()
    assert off.settings.tuning.refresh_run == 0
    for cost in (100.0, 40.0, 50.0):
        off._count_cost(cost)
    assert not off._refresh_due(1e9, None)


def test_skipped_p_fits_code_i_frames_the_decoder_reproduces(tmp_path: Path, monkeypatch) -> None:
    """Frames whose P-fit is skipped become I-frames (no warm start, no fit), and the file decodes
    to the encoder's reconstruction."""
    monkeypatch.setattr(Encoder, "_note_p_attempt", lambda self, ratio: setattr(self, "p_skips_left", 2))
    frames, info = crops([(k, 200, 40) for k in range(5)])
    summary, recon = encode(frames, info, tmp_path / "skip.gsvc", RDTuning(picture_frames=False), quality=30)
    assert [f.frame_type for f in summary.frames] == ["I", "P", "I", "I", "P"]
    with GsvcReader(tmp_path / "skip.gsvc") as reader:
        for decoded in decode_frames(reader):
            assert np.array_equal(decoded.image, recon[decoded.index].numpy())


def test_a_stale_intra_estimate_is_checked_by_a_real_i_frame() -> None:
    """After M-frames, a P-fit losing to the I-frame estimate is weighed against a real I-frame
    fit: a far costlier P-frame gives way to it, a cheaper one keeps the encoder's I-frame state
    (steps, count, costs) exactly as it was, since the P-frame is coded with the GOP's steps."""
    frames, info = crops([(0, 200, 40), (1, 200, 40), (2, 202, 40)])
    enc = Encoder(info, EncoderSettings(RateTarget(quality=30), "fast"), 3, 64)
    enc.encode(0, frames[0])
    assert enc.splat_frame_index == 0
    assert enc._reference_is_stale(2)
    assert not enc._reference_is_stale(1)  # the previous frame was the splat frame: nothing stale
    switched_off = dataclasses.replace(enc.settings, tuning=RDTuning(real_intra_after_m=False))
    enc.settings, settings = switched_off, enc.settings
    assert not enc._reference_is_stale(2)
    enc.settings = settings
    image = frames[2].to_yuv444_float()
    before = (enc.steps, enc.intra_scale, enc.intra_count, enc.intra_cost)
    assert enc._real_intra_if_cheaper(2, image, p_cost=0.0) is None
    assert (enc.steps, enc.intra_scale, enc.intra_count, enc.intra_cost) == before
    coded, result, _ = enc._real_intra_if_cheaper(2, image, p_cost=float("inf"))
    assert coded.frame_type == "I" and len(result.q) > 0


def test_a_short_fit_skips_only_the_real_i_fits_that_would_lose(monkeypatch) -> None:
    """The real I-frame trial first fits tuning.intra_trial_steps steps: a P-frame that even the
    best I-frame such a fit allows cannot beat keeps its place without the full fit, while a
    P-frame just above the full fit's J (times p_preference) still gets the I-frame."""
    import gsvc_cli.codec.encoder.gop as gop

    frames, info = crops([(0, 200, 40), (1, 200, 40), (2, 202, 40)])
    enc = Encoder(info, EncoderSettings(RateTarget(quality=30), "fast"), 3, 64)
    enc.encode(0, frames[0])
    image = frames[2].to_yuv444_float()
    saved = (enc.steps, enc.intra_scale, enc.intra_count, enc.intra_cost)
    enc._intra_rd(2, image)
    i_sse, i_bits = enc.intra_cost
    full_j = enc.settings.tuning.p_preference * (i_sse + enc.lam * i_bits)
    enc.steps, enc.intra_scale, enc.intra_count, enc.intra_cost = saved

    fits: list[int] = []
    real_fit = gop.fit_frame

    def counted(*args, **kwargs):
        fits.append(kwargs["config"].max_steps)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(gop, "fit_frame", counted)
    trial, full = enc.settings.tuning.intra_trial_steps, enc.preset.intra.max_steps
    assert 0 < trial < full
    assert enc._real_intra_if_cheaper(2, image, p_cost=0.5 * full_j) is None
    assert fits == [trial]  # a far loss: the short fit only
    assert enc._real_intra_if_cheaper(2, image, p_cost=0.99 * full_j) is None
    assert (enc.steps, enc.intra_scale, enc.intra_count, enc.intra_cost) == saved
    fits.clear()
    intra = enc._real_intra_if_cheaper(2, image, p_cost=1.01 * full_j)
    assert intra is not None and intra[0].frame_type == "I"
    assert fits[0] == trial and full in fits
    enc.settings = dataclasses.replace(enc.settings, tuning=RDTuning(intra_trial_steps=0))
    fits.clear()
    assert enc._real_intra_if_cheaper(2, image, p_cost=0.5 * full_j) is None
    assert trial not in fits and full in fits  # the ablation: always the full fit


def test_a_stale_estimate_does_not_code_an_i_frame_that_costs_more_than_the_m_frame(monkeypatch) -> None:
    """When the I-frame estimate is far too low (a stale one), every inter frame looks dearer than
    an I-frame; with real_intra_vs_m the real I-fit's J is compared with the M-frame's, so the
    M-frames that cost less stay M-frames (and the encoder's I-frame state is left as it was)."""
    frames, info = crops([(0, 200, 40), (1, 200, 40), (2, 200, 40)])

    def types(on: bool) -> str:
        tuning = RDTuning(real_intra_vs_m=on, intra_steps_scale=0.1)  # short I-fits: the test is the choice
        enc = Encoder(info, EncoderSettings(RateTarget(quality=30), "fast", tuning=tuning), 3, 64)
        enc.encode(0, frames[0])
        monkeypatch.setattr(enc, "_intra_cost_estimate", lambda: 1e-9)
        kinds = "I"
        for k in (1, 2):
            before = enc.intra_cost
            coded, _, _ = enc.encode(k, frames[k])
            kinds += coded.frame_type
            if coded.frame_type == "M":
                assert enc.intra_cost == before
        return kinds

    assert types(False) == "III"  # the estimate alone: I-frames
    assert types(True) == "IMM"  # the real I-frames cost more than these M-frames


def test_weighted_sse_is_the_clamped_weighted_sum_of_squares() -> None:
    """J's distortion, from the native pass on float32 CPU frames (a real crop against a render
    that leaves [0, 1]), equals the plain float64 expression to rounding; a float64 frame goes
    the torch way and gives the same."""
    frames, _ = crops([(0, 200, 40)])
    image = frames[0].to_yuv444_float()
    g = torch.Generator().manual_seed(3)
    rendered = image + 0.3 * torch.randn(image.shape, generator=g)
    weights = loss_weights(CHANNEL_WEIGHTS, "cpu")
    plain = float(((rendered.double().clamp(0, 1) - image.double()) ** 2).sum(dim=(1, 2)) @ weights.double())
    assert weighted_sse(rendered, image, weights) == pytest.approx(plain, rel=1e-6)
    assert weighted_sse(rendered.double(), image.double(), weights.double()) == pytest.approx(plain, rel=1e-9)
    assert weighted_sse(image, image, weights) == 0.0


@pytest.mark.parametrize("after_prune", [False, True])
def test_extra_residual_densities_are_fitted_only_near_an_i_frame(monkeypatch, after_prune: bool) -> None:
    """large_residual_extra's densities are fitted after large_picture_residual's only where the
    M-frame's J with those (as fitted, or pruned: residual_extra_after_prune) still exceeds
    residual_extra_gate x the I-frame estimate; frames below the preset's residual_max_pixels
    take picture_residual_extra's instead (after picture_residual's), behind the same gate."""
    frames, info = crops([(0, 200, 40), (0, 202, 40)])
    tuning = RDTuning(large_residual_extra="300", picture_residual_extra="120", residual_extra_gate=0.6,
                      residual_extra_after_prune=after_prune)
    settings = EncoderSettings(RateTarget(quality=30), "fast", tuning=tuning)
    assert Encoder(info, settings, 8, 64).extra_densities == "120"
    large = Encoder(info.with_(width=1280, height=720), settings, 8, 64)
    assert (large.residual_densities, large.extra_densities) == ("700", "300")
    counts: list[int] = []
    for estimate, fitted in ((1e9, [1]), (1e-9, [1, 10])):
        enc = _encoder(tuning)
        enc.residual_densities, enc.extra_densities = "2000", "300"  # 64x48: 1 splat, then 10
        real_fit = enc._fit

        def recording_fit(target, count, *args, real_fit=real_fit):
            counts.append(count)
            return real_fit(target, count, *args)

        monkeypatch.setattr(enc, "_fit", recording_fit)
        enc.picture = frames[0].to_yuv444_float()
        enc.intra_count, enc.intra_cost = 100, (estimate, 0.0)
        counts.clear()
        enc._picture_rd(1, frames[1].to_yuv444_float())
        assert counts == fitted


def test_matched_chroma_target_gives_sharper_decoded_chroma(tmp_path: Path) -> None:
    """chroma_match_steps: the I-frame fitted to the matched chroma target comes out of the decoder's
    box average closer to the real 4:2:0 chroma than one fitted to bilinear chroma (real crop)."""
    with open_video(HEADS) as reader:  # a webcam crop with fine colour detail
        info = reader.info.with_(frame_count=1)
        frames = [next(iter(reader))]
    chroma = {}
    for steps in (0, 1):
        _, recon = encode(frames, info, tmp_path / f"m{steps}.gsvc", RDTuning(chroma_match_steps=steps),
                          quality=36.0)
        decoded = Frame.from_yuv444_float(recon[0], info, 0)
        quality = frame_psnr(frames[0], decoded, with_rgb=False)
        chroma[steps] = (quality["psnr_u"], quality["psnr_v"])
    assert chroma[1][0] > chroma[0][0] + 0.5 and chroma[1][1] > chroma[0][1] + 0.5, chroma


def test_chroma_match_steps_apply_below_chroma_match_below_pixels() -> None:
    """Frames below 1280x720 get the matched chroma target; larger ones (smooth chroma at that size,
    where it measured no gain) keep bilinear, as does a 64x48 crop with the threshold lowered."""
    assert _encoder().chroma_match_steps == 1
    assert _encoder(RDTuning(chroma_match_below_pixels=64 * 48)).chroma_match_steps == 0
    _, info = crops([(0, 200, 40)])
    big = info.with_(width=1280, height=720)
    assert Encoder(big, EncoderSettings(RateTarget(quality=30), "fast"), 8, 64).chroma_match_steps == 0

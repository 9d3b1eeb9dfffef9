"""gsvc_cli.video: readers, writers and colour conversions, on real clips (tests/data) and against ffmpeg."""

from __future__ import annotations

import hashlib
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CARS, HEADS, KODIM23

from gsvc_cli.errors import InputError, UsageError
from gsvc_cli.video import Frame, open_video, open_writer


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def copy_video(src: Path, dst: Path, **reader_options) -> None:
    with open_video(src, **reader_options) as reader, open_writer(dst, reader.info) as writer:
        for frame in reader:
            writer.write(frame)


def ffmpeg_y4m(ffmpeg_exe: str, src: Path, dst: Path, *args: str) -> Path:
    subprocess.run([ffmpeg_exe, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), *args,
                    "-f", "yuv4mpegpipe", str(dst)], check=True)
    return dst


def test_y4m_info_and_lazy_range():
    with open_video(CARS, start=5, frames=3) as reader:
        info = reader.info
        assert (info.width, info.height, info.fps, info.pix_fmt) == (96, 64, Fraction(25), "yuv420p")
        assert info.frame_count == 3 and info.color_matrix == "bt601" and info.color_range == "limited"
        frames = list(reader)
    assert [f.index for f in frames] == [5, 6, 7]
    assert frames[0].y.shape == (64, 96) and frames[0].u.shape == (32, 48)


def test_y4m_to_yuv_to_y4m_is_bit_exact(tmp_path: Path):
    src = HEADS
    copy_video(src, tmp_path / "a.yuv")
    copy_video(tmp_path / "a.yuv", tmp_path / "b.y4m", size=(64, 48), fps=Fraction(12),
               pix_fmt="yuv420p")
    assert md5(tmp_path / "b.y4m") == md5(src)


def test_y4m_to_lossless_mp4_to_y4m_is_bit_exact_and_keeps_ntsc_rate(tmp_path: Path):
    src = HEADS
    with open_video(src) as reader:
        info = reader.info.with_(fps=Fraction(30000, 1001))
        with open_writer(tmp_path / "a.mp4", info, lossless=True) as writer:
            for frame in reader:
                writer.write(frame)
    with open_video(tmp_path / "a.mp4") as reader:
        assert reader.info.fps == Fraction(30000, 1001)
        assert reader.info.frame_count == 9
        assert reader.info.color_matrix == "bt601" and reader.info.color_range == "limited"
    copy_video(tmp_path / "a.mp4", tmp_path / "b.y4m", fps=Fraction(12))
    assert md5(tmp_path / "b.y4m") == md5(src)


@pytest.mark.parametrize("pix_fmt", ["yuv444p", "yuv420p10le"])
def test_other_y4m_formats_match_ffmpeg_raw(ffmpeg_exe: str, tmp_path: Path, pix_fmt: str):
    src = ffmpeg_y4m(ffmpeg_exe, CARS, tmp_path / "s.y4m",
                     "-frames:v", "3", "-pix_fmt", pix_fmt, "-strict", "-1")
    raw = subprocess.run([ffmpeg_exe, "-loglevel", "error", "-i", str(src), "-f", "rawvideo", "-"],
                         capture_output=True, check=True).stdout
    with open_video(src) as reader:
        assert reader.info.pix_fmt == pix_fmt
        ours = b"".join(f.tobytes() for f in reader)
    assert ours == raw
    copy_video(src, tmp_path / "copy.y4m")
    assert md5(tmp_path / "copy.y4m") == md5(src)


def test_odd_size_420_round_trips(ffmpeg_exe: str, tmp_path: Path):
    src = ffmpeg_y4m(ffmpeg_exe, CARS, tmp_path / "odd.y4m",
                     "-frames:v", "2", "-vf", "format=yuv444p,crop=95:63:0:0,format=yuv420p")
    with open_video(src) as reader:
        info = reader.info
        frames = list(reader)
    assert (info.width, info.height) == (95, 63)
    assert frames[0].u.shape == (32, 48)
    for frame in frames:
        yuv = frame.to_yuv444_float(chroma="nearest")
        assert yuv.shape == (3, 63, 95)
        back = Frame.from_yuv444_float(yuv, info)
        for a, b in zip(frame.planes, back.planes, strict=True):
            np.testing.assert_array_equal(a, b)
    copy_video(src, tmp_path / "copy.y4m")
    assert md5(tmp_path / "copy.y4m") == md5(src)
    with pytest.raises(UsageError, match="even frame size"):
        open_writer(tmp_path / "odd.mp4", info)


@pytest.mark.parametrize("color_range", ["limited", "full"])
def test_rgb_conversion_matches_ffmpeg(ffmpeg_exe: str, tmp_path: Path, color_range: str):
    # 4:4:4 so that no chroma interpolation choice is involved: only matrix and range.
    vf = "scale=out_range=full" if color_range == "full" else "null"
    src = ffmpeg_y4m(ffmpeg_exe, CARS, tmp_path / "s.y4m",
                     "-frames:v", "1", "-vf", vf, "-pix_fmt", "yuv444p")
    with open_video(src) as reader:
        assert reader.info.color_range == color_range
        frame = next(iter(reader))
    rgb_ff = subprocess.run(
        [ffmpeg_exe, "-loglevel", "error", "-i", str(src), "-vf",
         f"scale=in_color_matrix=bt601:in_range={color_range}:flags=accurate_rnd+full_chroma_int",
         "-pix_fmt", "rgb24", "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    theirs = torch.from_numpy(np.frombuffer(rgb_ff, np.uint8).reshape(64, 96, 3).copy()).permute(2, 0, 1)
    ours = (frame.to_rgb_float() * 255).round()
    diff = (ours - theirs.float()).abs()
    assert float(diff.max()) <= 1.0 and float(diff.mean()) < 0.1
    # and back: RGB -> YUV 4:4:4 recovers the codes to within rounding, except where the RGB
    # was clamped (YUV codes outside the RGB gamut)
    rgb = frame.to_rgb_float()
    back = Frame.from_rgb_float(rgb, reader.info)
    err = np.abs(back.y.astype(int) - frame.y.astype(int))
    clamped = ((rgb <= 0) | (rgb >= 1)).any(0).numpy()
    assert np.median(err) == 0 and not (err[~clamped] > 1).any() and clamped.mean() < 0.1


def test_png_is_a_one_frame_video_and_sequences_round_trip(tmp_path: Path):
    with open_video(KODIM23) as reader:
        info = reader.info
        frames = list(reader)
    assert info.pix_fmt == "rgb24" and len(frames) == 1 and frames[0].rgb.shape == (192, 256, 3)
    with open_writer(tmp_path / "out_%03d.png", info) as writer:
        writer.write(frames[0])
        writer.write(frames[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_001.png", "out_002.png"]
    with open_video(tmp_path / "out_002.png") as reader:
        np.testing.assert_array_equal(next(iter(reader)).rgb, frames[0].rgb)


def test_raw_yuv_needs_description_and_whole_frames(tmp_path: Path):
    raw = tmp_path / "clip.yuv"
    copy_video(HEADS, raw)
    with pytest.raises(UsageError, match="--size, --pix-fmt"):
        open_video(raw, fps=Fraction(12))
    with pytest.raises(InputError, match="not a whole number"):
        open_video(raw, size=(352, 288), fps=Fraction(12), pix_fmt="yuv420p")
    with open_video(raw, size=(64, 48), fps=Fraction(12), pix_fmt="yuv420p", start=8) as reader:
        assert reader.info.frame_count == 1
        assert [f.index for f in reader] == [8]


def test_writer_refuses_existing_and_leaves_nothing_on_error(tmp_path: Path):
    src = HEADS
    with open_video(src, frames=1) as reader:
        info, frame = reader.info, next(iter(reader))
    out = tmp_path / "o.y4m"
    out.write_bytes(b"keep")
    with pytest.raises(UsageError, match="already exists"):
        open_writer(out, info)
    with pytest.raises(RuntimeError), open_writer(tmp_path / "new.mp4", info) as writer:
        writer.write(frame)
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.y4m"]
    assert out.read_bytes() == b"keep"


def test_a_still_png_is_a_one_frame_video(tmp_path):
    """Rate control needs the frame count up front: a PNG must report exactly one frame."""
    from gsvc_cli.video import open_video

    with open_video(KODIM23) as reader:
        assert reader.info.frame_count == 1
        assert len(list(reader)) == 1


def test_sample_aspect_ratio_is_read_and_written(shared_data: Path, tmp_path: Path):
    """foreman's 128:117 (MP4) reaches Y4M's A tag and comes back; unknown stays A0:0."""
    with open_video(shared_data / "clips" / "foreman_cif_60f.mp4", frames=1) as reader:
        assert reader.info.sar == Fraction(128, 117)
    copy_video(shared_data / "clips" / "foreman_cif_60f.mp4", tmp_path / "f.y4m", frames=1)
    assert b" A128:117 " in (tmp_path / "f.y4m").read_bytes()[:80]
    with open_video(tmp_path / "f.y4m") as reader:
        assert reader.info.sar == Fraction(128, 117)
    with open_video(shared_data / "clips" / "cars_320x240_30f.y4m", frames=1) as reader:
        assert reader.info.sar is None  # the file says A0:0


def test_matched_chroma_survives_the_box_average_a_decoded_picture_is_written_with():
    """The encoder's chroma target (bilinear plus match steps), box-averaged as
    Frame.from_yuv444_float writes a decoded picture, comes back far closer to the real clip's 4:2:0
    chroma than bilinear alone does, and closer with each step; luma is untouched."""
    from gsvc_cli.video.colour import downsample_chroma

    with open_video(CARS) as reader:
        frame = next(iter(reader))
    planes = frame.plane_tensors()

    def round_trip_psnr(steps: int) -> list[float]:
        yuv = frame.to_yuv444_float(match_steps=steps)
        out = []
        for k in (1, 2):
            back = downsample_chroma(yuv[k], 1, 1)
            mse = float(((back - planes[k] / 255.0) ** 2).mean())
            out.append(10 * np.log10(1 / mse))
        return out

    psnrs = [round_trip_psnr(steps) for steps in (0, 1, 2)]
    for plane in range(2):
        assert psnrs[1][plane] > psnrs[0][plane] + 5.0, psnrs
        assert psnrs[2][plane] > psnrs[1][plane] + 3.0, psnrs
    assert torch.equal(frame.to_yuv444_float(match_steps=2)[0], frame.to_yuv444_float()[0])
    with pytest.raises(ValueError):
        frame.to_yuv444_float("sharpest")

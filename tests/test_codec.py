"""The codec end to end on tiny crops of real clips: encode -> .gsvc -> decode.

Real fitting, real quantisation, real entropy coding and a real file; crops (64x48 .. 96x64) and
the fast preset keep each encode to seconds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import HEADS, SCENECUT

from gsvc_cli.codec.bitstream.container import GsvcReader
from gsvc_cli.codec.decoder import decode_frames, decode_video
from gsvc_cli.codec.encoder.gop import EncoderSettings, encode_video
from gsvc_cli.codec.encoder.rate_control import RateTarget
from gsvc_cli.errors import UsageError
from gsvc_cli.video import Frame, VideoInfo, open_video


def clip_frames(path: Path, start: int = 0, frames: int = 3, repeat_first: bool = False
                ) -> tuple[list[Frame], VideoInfo]:
    """Frames start.. of a tiny real clip from tests/data, numbered from 0 (optionally the first one
    repeated: static content)."""
    with open_video(path, start=start, frames=frames) as reader:
        info = reader.info
        source = list(reader)
    if repeat_first:
        source = [source[0]] * frames
    out = [Frame(f.planes, f.pix_fmt, f.color_matrix, f.color_range, k) for k, f in enumerate(source)]
    return out, info.with_(frame_count=len(out))


def encode(frames: list[Frame], info: VideoInfo, out: Path, **target) -> tuple:
    recon: dict[int, torch.Tensor] = {}
    settings = EncoderSettings(RateTarget(**target), preset="fast")
    summary = encode_video(iter(frames), info, out, settings, frame_count=len(frames),
                           on_frame=lambda k, img: recon.__setitem__(k, img.clone()))
    return summary, recon


@pytest.fixture(scope="module")
def talking_heads(tmp_path_factory: pytest.TempPathFactory):
    """4 frames of a real low-motion clip (64x48 crop of a face), encoded once at 1.0 bpp."""
    frames, info = clip_frames(HEADS, frames=4)
    out = tmp_path_factory.mktemp("codec") / "heads.gsvc"
    summary, recon = encode(frames, info, out, bpp=1.0)
    return frames, info, out, summary, recon


def test_decoder_reproduces_the_encoders_reconstruction(talking_heads):
    """Closed loop: no drift along the GOP, bit for bit."""
    _, _, out, summary, recon = talking_heads
    assert [f.frame_type for f in summary.frames][0] == "I"
    assert "P" in [f.frame_type for f in summary.frames]
    with GsvcReader(out) as reader:
        decoded = list(decode_frames(reader))
    assert len(decoded) == len(recon)
    for d in decoded:
        assert np.array_equal(d.image, recon[d.index].numpy()), f"frame {d.index} drifted"


def test_torch_free_decode_gives_the_codes_of_the_torch_path(talking_heads, tmp_path: Path):
    """The file written by the decoder (numpy integers, C render, C conversion) holds the codes the
    torch path makes: decode_frame -> dequantise -> the torch extension's render -> torch's 4:2:0
    conversion; and the codes of the encoder's own reconstruction."""
    from gsvc_cli.codec.bitstream.frame_coding import decode_frame
    from gsvc_cli.codec.bitstream.quantise import dequantise
    from gsvc_cli.codec.splats import render_splats
    from gsvc_cli.video.frame import _codes_torch

    _, info, out, _, recon = talking_heads
    y4m = tmp_path / "dec.y4m"
    decode_video(out, y4m)
    with open_video(y4m) as reader:
        written = list(reader)
    prev, steps = None, None
    with GsvcReader(out) as reader:
        for k, record in reader.frames():
            frame = decode_frame(record.payload, prev if record.frame_type == "P" else None)
            prev, steps = frame.splats, frame.steps or steps
            image = render_splats(dequantise(frame.splats, steps), info.height, info.width, backend="cpu")
            torch_codes = _codes_torch(image, info.fmt)
            encoder_codes = _codes_torch(recon[k].clone(), info.fmt)
            for plane, want, encoder in zip(written[k].planes, torch_codes, encoder_codes, strict=True):
                assert np.array_equal(plane, want) and np.array_equal(plane, encoder)


def test_bpp_target_is_met_with_everything_counted(talking_heads):
    frames, info, out, summary, _ = talking_heads
    real_bpp = 8 * out.stat().st_size / (info.width * info.height * len(frames))
    assert summary.file_bytes == out.stat().st_size
    assert summary.bpp == pytest.approx(real_bpp)
    assert real_bpp == pytest.approx(1.0, rel=0.05)


def test_quality_is_real(talking_heads):
    """At 1 bpp a 64x48 face crop decodes far above the ~15 dB of a flat grey picture, in every
    frame (the P-frames of a moving face lose about 1 dB each at this tiny rate)."""
    *_, summary, _ = talking_heads
    assert summary.frames[0].psnr > 26.0
    assert min(f.psnr for f in summary.frames) > 22.0


def test_decode_to_y4m_and_seek(talking_heads, tmp_path: Path):
    frames, info, out, _, recon = talking_heads
    y4m = tmp_path / "dec.y4m"
    result = decode_video(out, y4m, start=2, frames=2)
    assert result.frames == 2
    with open_video(y4m) as reader:
        decoded = list(reader)
    assert len(decoded) == 2
    expected = Frame.from_yuv444_float(recon[2], info.with_(frame_count=None), 2)
    assert np.array_equal(decoded[0].y, expected.y)


def test_static_content_makes_p_frames_nearly_free(tmp_path: Path):
    """The same frame three times: the P-frames cost a small fraction of the I-frame."""
    frames, info = clip_frames(HEADS, frames=3, repeat_first=True)
    summary, _ = encode(frames, info, tmp_path / "static.gsvc", splats=120)
    i_bits = summary.frames[0].bits
    assert [f.frame_type for f in summary.frames] == ["I", "P", "P"]
    for f in summary.frames[1:]:
        assert f.bits < 0.25 * i_bits, f"P-frame {f.index}: {f.bits} bits vs I-frame {i_bits}"


def test_scene_cut_becomes_an_i_frame(tmp_path: Path):
    """Kodak 05 -> Kodak 14 hard cut at frame 24 of the synthetic clip (frame 2 of its crop: 22..25)."""
    frames, info = clip_frames(SCENECUT, frames=4)
    summary, _ = encode(frames, info, tmp_path / "cut.gsvc", bpp=1.0)
    types = "".join(f.frame_type for f in summary.frames)
    assert types[2] == "I", f"cut at frame 24 not detected: {types}"
    assert summary.frames[2].scene_cut


def test_psnr_target(tmp_path: Path):
    frames, info = clip_frames(HEADS, frames=2)
    summary, _ = encode(frames, info, tmp_path / "psnr.gsvc", psnr=30.0)
    assert summary.mean_psnr == pytest.approx(30.0, abs=1.0)


def test_file_bytes_are_deterministic(talking_heads, tmp_path: Path):
    frames, info, out, _, _ = talking_heads
    again = tmp_path / "again.gsvc"
    encode(frames, info, again, bpp=1.0)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(out.read_bytes()).digest()


@pytest.mark.parametrize("target", [{"bpp": 0.0}, {"bpp": -1.0}, {"bpp": 1e6}, {"splats": 0}, {}])
def test_bad_targets_are_usage_errors(target):
    with pytest.raises(UsageError):
        RateTarget(**target)

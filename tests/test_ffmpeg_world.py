"""gsvc among the tools people chain it with: pipes in and out of the real ffmpeg binary, Matroska
and PNG inputs, playable .mp4 output, and the sample aspect ratio and colour tags carried through.

Everything runs on tiny crops of the bundled clip (always present), encoded with few splats, so
each test takes seconds.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest
from helpers import run_gsvc_cli
from PIL import Image

from gsvc_cli.codec.bitstream.container import FORMAT_MAJOR, FORMAT_MINOR, GsvcReader
from gsvc_cli.codec.encoder.rate_control import RateController, RateTarget
from gsvc_cli.commands.demo import DEMO_CLIP
from gsvc_cli.video import open_video

FAST = ("--splats", "32", "--preset", "fast", "--gop", "2", "--scenecut", "0")
GSVC = [sys.executable, "-m", "gsvc_cli"]


def one_error_line(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("gsvc: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def pipe(first: list[str], second: list[str]) -> tuple[int, int, bytes, str, str]:
    """first | second: (exit of first, exit of second, second's stdout, first's and second's stderr)."""
    a = subprocess.Popen(first, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    b = subprocess.Popen(second, stdin=a.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert a.stdout is not None
    a.stdout.close()  # so that `first` sees a closed pipe if `second` exits
    out, err_b = b.communicate()
    err_a = a.stderr.read() if a.stderr is not None else b""
    a.wait()
    return a.returncode, b.returncode, out, err_a.decode(), err_b.decode()


def frames_bytes(path: Path) -> list[bytes]:
    with open_video(path) as reader:
        return [frame.tobytes() for frame in reader]


@pytest.fixture(scope="module")
def piped(tmp_path_factory, ffmpeg_exe) -> tuple[Path, Path]:
    """(dir, .gsvc) made by `ffmpeg ... -f yuv4mpegpipe - | gsvc encode - -o p.gsvc`: 3 frames of a
    64x48 crop of the bundled clip, given foreman's 128:117 sample aspect ratio."""
    work = tmp_path_factory.mktemp("pipe")
    out = work / "p.gsvc"
    rc_ff, rc_gsvc, stdout, err_ff, err_gsvc = pipe(
        [ffmpeg_exe, "-loglevel", "error", "-i", str(DEMO_CLIP), "-vf",
         "crop=64:48:100:100,setsar=r=128/117:max=1000", "-frames:v", "3", "-f", "yuv4mpegpipe", "-"],
        [*GSVC, "encode", "-", "-o", str(out), *FAST])
    assert rc_ff == 0 and rc_gsvc == 0, err_ff + err_gsvc
    assert stdout == b"" and "encoded 3 frames" in err_gsvc  # messages on stderr only
    return work, out


def test_encode_from_standard_input_patches_the_frame_count(piped):
    _, out = piped
    with GsvcReader(out) as reader:
        assert reader.header.frame_count == len(reader) == 3
        assert reader.header.version == (FORMAT_MAJOR, FORMAT_MINOR)
        assert reader.header.params["sar"] == "128:117"


def test_decode_to_standard_output_feeds_ffmpeg(piped, ffmpeg_exe):
    work, out = piped
    as_file = work / "d.y4m"
    assert run_gsvc_cli("decode", out, "-o", as_file).returncode == 0
    assert as_file.read_bytes().split(b"\n", 1)[0].split()[5] == b"A128:117"  # Y4M keeps the SAR
    # gsvc decode -o - | ffmpeg -i - : ffmpeg reads the same frames the file holds
    rc_gsvc, rc_ff, raw, err_gsvc, err_ff = pipe(
        [*GSVC, "decode", str(out), "-o", "-"],
        [ffmpeg_exe, "-loglevel", "error", "-i", "-", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
    assert rc_gsvc == 0 and rc_ff == 0, err_gsvc + err_ff
    assert raw == b"".join(frames_bytes(as_file)) and len(raw) == 3 * 64 * 48 * 3 // 2
    assert "decoded 3 frames" in err_gsvc
    # and the whole Y4M stream is byte for byte the file
    direct = subprocess.run([*GSVC, "decode", str(out), "-o", "-", "-q"], capture_output=True)
    assert direct.returncode == 0 and direct.stdout == as_file.read_bytes() and direct.stderr == b""
    raw_out = subprocess.run([*GSVC, "decode", str(out), "-o", "-", "--format", "yuv", "-q"],
                             capture_output=True)
    assert raw_out.returncode == 0 and raw_out.stdout == raw


def test_mp4_is_playable_by_default_and_exact_on_request(piped):
    work, out = piped
    playable, exact = work / "play.mp4", work / "exact.mp4"
    assert run_gsvc_cli("decode", out, "-o", playable).returncode == 0
    assert run_gsvc_cli("decode", out, "-o", exact, "--lossless").returncode == 0
    with av.open(str(playable)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.profile == "High" and stream.codec_context.pix_fmt == "yuv420p"
        assert stream.sample_aspect_ratio == Fraction(128, 117)
        assert container.streams.video[0].frames == 3
    with av.open(str(exact)) as container:
        assert container.streams.video[0].codec_context.profile == "High 4:4:4 Predictive"
    assert run_gsvc_cli("decode", out, "-o", work / "exact.y4m").returncode == 0
    assert frames_bytes(exact) == frames_bytes(work / "exact.y4m")  # what gsvc eval needs
    one_error_line(run_gsvc_cli("decode", out, "-o", work / "x.mp4", "--lossless", "--crf", "20"), 2,
                   "--lossless")
    one_error_line(run_gsvc_cli("decode", out, "-o", work / "x.y4m", "--lossless"), 2, "--lossless")
    assert not (work / "x.mp4").exists() and not (work / "x.y4m").exists()


def test_show_splats_draws_a_picture(piped):
    work, out = piped
    picture = work / "splats.png"
    result = run_gsvc_cli("decode", out, "--show-splats", picture, "--start", "1", "--frames", "1")
    assert result.returncode == 0, result.stderr
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width >= 64 * 4  # small frames are enlarged
    one_error_line(run_gsvc_cli("decode", out), 2, "--output")


def test_matroska_without_frame_count_keeps_sar_and_colour_tags(tmp_path, ffmpeg_exe):
    """ffmpeg's .mkv stores no frame count: gsvc counts the packets; BT.709 tags and SAR survive."""
    mkv = tmp_path / "t.mkv"
    subprocess.run([ffmpeg_exe, "-loglevel", "error", "-i", str(DEMO_CLIP), "-vf",
                    "crop=64:48:100:100,setsar=4/3,setparams=color_primaries=bt709:color_trc=bt709:"
                    "colorspace=bt709", "-frames:v", "2", "-c:v", "libx264", "-crf", "10", str(mkv)],
                   check=True)
    with av.open(str(mkv)) as container:
        assert container.streams.video[0].frames == 0  # really not stored
    out = tmp_path / "t.gsvc"
    result = run_gsvc_cli("encode", mkv, "-o", out, *FAST)
    assert result.returncode == 0, result.stderr
    with GsvcReader(out) as reader:
        assert len(reader) == 2 and reader.header.matrix == "bt709"
        assert reader.header.params["colour_primaries"] == "1"
    mp4 = tmp_path / "t.mp4"
    assert run_gsvc_cli("decode", out, "-o", mp4).returncode == 0
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        assert stream.sample_aspect_ratio == Fraction(4, 3)
        assert (int(frame.colorspace), int(frame.color_primaries), int(frame.color_trc)) == (1, 1, 1)


def test_png_decodes_to_y4m_as_444(tmp_path, ffmpeg_exe):
    png = tmp_path / "photo.png"
    subprocess.run([ffmpeg_exe, "-loglevel", "error", "-i", str(DEMO_CLIP), "-vf", "crop=64:48:100:100",
                    "-frames:v", "1", "-pix_fmt", "rgb24", str(png)], check=True)
    out = tmp_path / "p.gsvc"
    assert run_gsvc_cli("encode", png, "-o", out, *FAST).returncode == 0
    y4m = tmp_path / "p.y4m"
    result = run_gsvc_cli("decode", out, "-o", y4m)
    assert result.returncode == 0, result.stderr
    with open_video(y4m) as reader:
        assert reader.info.pix_fmt == "yuv444p" and len(list(reader)) == 1
    assert run_gsvc_cli("decode", out, "-o", tmp_path / "q.y4m", "--pix-fmt", "yuv420p").returncode == 0
    with open_video(tmp_path / "q.y4m") as reader:
        assert reader.info.pix_fmt == "yuv420p"
    one_error_line(run_gsvc_cli("decode", out, "-o", tmp_path / "r.y4m", "--pix-fmt", "rgb24"), 2, "rgb24")
    assert not (tmp_path / "r.y4m").exists()


def test_bt2020_is_refused_in_one_line(tmp_path, ffmpeg_exe):
    mkv = tmp_path / "hdr.mkv"
    subprocess.run([ffmpeg_exe, "-loglevel", "error", "-i", str(DEMO_CLIP), "-vf",
                    "crop=64:48:0:0,setparams=color_primaries=bt2020:color_trc=bt709:colorspace=bt2020nc",
                    "-frames:v", "1", "-c:v", "libx264", str(mkv)], check=True)
    one_error_line(run_gsvc_cli("encode", mkv, "-o", tmp_path / "hdr.gsvc", *FAST), 2, "bt2020")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hdr.mkv"]


def test_pipe_misuse_gives_one_line(tmp_path):
    not_y4m = subprocess.run([*GSVC, "encode", "-", "-o", str(tmp_path / "x.gsvc")], input=b"hello\n",
                             capture_output=True)
    lines = not_y4m.stderr.decode().strip().splitlines()
    assert not_y4m.returncode == 1 and len(lines) == 1 and "not a Y4M stream" in lines[0]
    one_error_line(run_gsvc_cli("encode", DEMO_CLIP, "-o", "-"), 2, "standard output")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("gop", "frames"), [(4, 12), (60, 8), (60, 13), (60, 30), (60, 75)])
def test_rate_control_without_a_frame_count_meets_bpp(gop: int, frames: int):
    """Open-ended (a pipe): planned over a short horizon that grows, the --bpp budget is met whenever
    the stream ends after the first horizon, when every frame costs what it was planned."""
    width, height, header, entry = 64, 48, 100, 20
    rate = RateController(RateTarget(bpp=0.5), width, height, None, gop, header + 16, entry_bytes=entry)
    n_prev = 0
    for k in range(frames):
        plan = rate.plan_intra() if k % gop == 0 else rate.plan_inter(n_prev)
        assert plan.bits is not None and plan.bits > 0
        n_prev = plan.count
        rate.record("I" if k % gop == 0 else "P", plan.bits, plan.count)
    total = rate.used_bits + 8 * (header + 16 + entry * frames)
    assert total == pytest.approx(0.5 * width * height * frames, rel=1e-3)

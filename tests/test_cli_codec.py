"""gsvc encode / info / decode through the real CLI, on a tiny crop of a real clip.

One encode (64x48, 3 frames, preset fast, 32 splats, GOP 2 -> I P I) is shared by the whole module:
encoding is slow on a CPU, and everything else here (info, decode, seeking, damaged files,
refusals) is quick.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from helpers import HEADS, run_gsvc_cli

from gsvc_cli.codec.bitstream.container import FORMAT_MAJOR, FORMAT_MINOR, GsvcReader
from gsvc_cli.video import open_video


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gsvc: error: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def _frames_bytes(path) -> list[bytes]:
    with open_video(path) as reader:
        return [frame.tobytes() for frame in reader]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, ffmpeg_exe):
    """(dir, source .y4m, .gsvc, the encoder's stderr) for the first 3 frames of a 64x48 crop of a
    real clip (tests/data)."""
    work = tmp_path_factory.mktemp("codec")
    source = work / "tiny.y4m"
    subprocess.run([ffmpeg_exe, "-loglevel", "error", "-i", str(HEADS), "-frames:v", "3", "-c:v", "rawvideo",
                    "-f", "yuv4mpegpipe", str(source)], check=True)
    out = work / "tiny.gsvc"
    result = run_gsvc_cli("encode", source, "-o", out, "--splats", "32", "--preset", "fast",
                          "--gop", "2", "--scenecut", "0", "-v")
    assert result.returncode == 0, result.stderr
    return work, source, out, result.stderr


@pytest.fixture(scope="module")
def decoded(encoded):
    """The whole file decoded to .y4m, and its frames' bytes."""
    work, _, out, _ = encoded
    target = work / "decoded.y4m"
    result = run_gsvc_cli("decode", out, "-o", target)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().startswith("decoded 3 frames")
    return target, _frames_bytes(target)


def test_encode_summary_and_verbose_table(encoded):
    _, _, out, stderr = encoded
    assert out.stat().st_size > 0
    summary = stderr.strip().splitlines()[-1]
    assert summary.startswith("encoded 3 frames (I 2, P 1)"), summary
    assert f"{out.stat().st_size} bytes" in summary
    bpp = float(re.search(r"([\d.]+) bpp", summary).group(1))
    assert bpp == pytest.approx(8 * out.stat().st_size / (64 * 48 * 3), abs=1e-4)
    assert "PSNR YUV" in summary and "s/frame" in summary
    # -v: one row per frame with its type
    rows = [line for line in stderr.splitlines() if re.match(r"^\W*\d+\W+[IP]\b", line)]
    assert [re.search(r"\b([IP])\b", r).group(1) for r in rows] == ["I", "P", "I"], stderr


def test_info_json(encoded):
    _, _, out, _ = encoded
    result = run_gsvc_cli("info", out, "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["frame_count"] == 3
    assert [f["type"] for f in facts["frames"]] == ["I", "P", "I"]
    assert facts["gop_pattern"] == "IP I" and facts["gops"] == 2 and facts["gop_lengths"] == [2, 1]
    assert (facts["width"], facts["height"], facts["fps"]) == (64, 48, "12")
    assert facts["duration_seconds"] == pytest.approx(0.25)
    assert facts["file_bytes"] == out.stat().st_size
    assert facts["bpp"] == pytest.approx(8 * out.stat().st_size / (64 * 48 * 3))
    assert facts["splats"]["max"] <= 32 and facts["splats"]["min"] >= 1
    assert facts["frame_types"]["I"]["count"] == 2 and facts["frame_types"]["P"]["count"] == 1
    assert facts["params"]["preset"] == "fast" and facts["params"]["target"] == "splats=32"
    assert facts["format_version"] == f"{FORMAT_MAJOR}.{FORMAT_MINOR}"
    # records + header + index + trailer = the file
    assert sum(f["bytes"] for f in facts["frames"]) < facts["file_bytes"]
    for row in facts["frames"]:
        assert row["bits_per_splat"] == pytest.approx(row["payload_bits"] / row["splats"])


def test_info_text(encoded):
    _, _, out, _ = encoded
    result = run_gsvc_cli("info", out, "--frames")
    assert result.returncode == 0, result.stderr
    assert "64x48" in result.stdout and "12 (12.000 fps)" in result.stdout
    assert "IP I" in result.stdout and "bits/splat" in result.stdout


def test_decode_then_eval_matches_the_encoder(encoded, decoded):
    _, source, _, stderr = encoded
    target, frames = decoded
    assert len(frames) == 3
    result = run_gsvc_cli("eval", source, target, "--metrics", "psnr", "--json")
    assert result.returncode == 0, result.stderr
    psnr = json.loads(result.stdout)["mean"]["psnr_yuv"]
    # The decoder reproduces the encoder's reconstruction, so the encoder's PSNR is the real one.
    encoder_psnr = float(re.search(r"PSNR YUV ([\d.]+) dB", stderr).group(1))
    assert psnr == pytest.approx(encoder_psnr, abs=0.01)
    assert psnr > 20


def test_decode_start_seeks_from_the_i_frame(encoded, decoded):
    work, _, out, _ = encoded
    part = work / "part.y4m"
    result = run_gsvc_cli("decode", out, "-o", part, "--start", "1", "--frames", "1")
    assert result.returncode == 0, result.stderr
    frames = decoded[1]
    assert _frames_bytes(part) == [frames[1]]  # a P-frame: frame 0 must be decoded first
    assert frames[1] != frames[0]


def test_existing_output_refused_without_y(encoded, decoded, tmp_path):
    _, source, out, _ = encoded
    target = tmp_path / "taken.gsvc"
    target.write_bytes(b"keep me")
    result = run_gsvc_cli("encode", source, "-o", target, "--splats", "8", "--preset", "fast")
    assert result.returncode == 2
    assert "already exists" in _one_error_line(result) and "-y" in result.stderr
    assert target.read_bytes() == b"keep me"
    taken = tmp_path / "taken.y4m"
    taken.write_bytes(b"mine")
    result = run_gsvc_cli("decode", out, "-o", taken)
    assert result.returncode == 2 and str(taken) in _one_error_line(result)
    assert taken.read_bytes() == b"mine"
    result = run_gsvc_cli("decode", out, "-o", taken, "-y", "-q")
    assert result.returncode == 0 and result.stderr == ""
    assert _frames_bytes(taken) == decoded[1]


def test_output_same_as_input_refused(encoded):
    _, source, out, _ = encoded
    before = source.read_bytes()
    result = run_gsvc_cli("encode", source, "-o", source, "-y")
    assert result.returncode == 2 and "same file as input" in _one_error_line(result)
    assert source.read_bytes() == before
    gsvc_before = out.read_bytes()
    result = run_gsvc_cli("decode", out, "-o", out, "-y")
    assert result.returncode == 2 and "same file as input" in _one_error_line(result)
    assert out.read_bytes() == gsvc_before


@pytest.mark.parametrize("args", [["--bpp", "0"], ["--bpp", "nan"], ["--bpp", "0.4", "--psnr", "30"]])
def test_bad_encode_options_are_usage_errors(encoded, tmp_path, args):
    _, source, _, _ = encoded
    target = tmp_path / "x.gsvc"
    result = run_gsvc_cli("encode", source, "-o", target, *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert not target.exists()


def _damaged_copy(out, tmp_path, name, frame):
    """A copy of `out` with one byte of frame `frame`'s payload flipped."""
    with GsvcReader(out) as reader:
        entry = reader.index[frame]
    data = bytearray(out.read_bytes())
    data[entry.offset + 13 + entry.payload_length // 2] ^= 0xFF
    damaged = tmp_path / name
    damaged.write_bytes(bytes(data))
    return damaged


def test_corrupt_frame(encoded, decoded, tmp_path):
    _, _, out, _ = encoded
    damaged = _damaged_copy(out, tmp_path, "damaged.gsvc", 1)
    target = tmp_path / "dec.y4m"
    result = run_gsvc_cli("decode", damaged, "-o", target)
    assert result.returncode == 1
    line = _one_error_line(result)
    assert str(damaged) in line and "frame 1" in line
    assert not target.exists()
    result = run_gsvc_cli("info", damaged)
    assert result.returncode == 1 and "frame 1" in _one_error_line(result)
    # --ignore-errors: frames 0 and 2 (the second GOP) are intact and decoded, frame 1 reported
    result = run_gsvc_cli("decode", damaged, "-o", target, "--ignore-errors")
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "(1)" in result.stderr
    good = decoded[1]
    assert _frames_bytes(target) == [good[0], good[2]]


def test_truncated_file(encoded, tmp_path):
    _, _, out, _ = encoded
    truncated = tmp_path / "truncated.gsvc"
    truncated.write_bytes(out.read_bytes()[:-40])
    result = run_gsvc_cli("decode", truncated, "-o", tmp_path / "t.y4m")
    assert result.returncode == 1
    line = _one_error_line(result)
    assert str(truncated) in line and "truncated" in line
    assert not (tmp_path / "t.y4m").exists()


def test_wrong_magic(encoded, tmp_path):
    _, source, _, _ = encoded
    fake = tmp_path / "fake.gsvc"
    shutil.copy(source, fake)
    result = run_gsvc_cli("info", fake)
    assert result.returncode == 1
    line = _one_error_line(result)
    assert str(fake) in line and "not a .gsvc file" in line

"""`gsvc eval` through the real CLI: output formats, mismatches and bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import CARS, HEADS, run_gsvc_cli


@pytest.fixture(scope="module")
def clip_pair(ffmpeg_exe: str, tmp_path_factory) -> tuple[Path, Path]:
    """A real clip (tests/data) as Y4M (6 of its 8 frames) and an x264 copy of it in MP4: different
    containers."""
    folder = tmp_path_factory.mktemp("eval")
    ref, dist = folder / "ref.y4m", folder / "dist.mp4"
    subprocess.run([ffmpeg_exe, "-loglevel", "error", "-i", str(CARS), "-frames:v", "6", str(ref)],
                   check=True)
    subprocess.run([ffmpeg_exe, "-loglevel", "error", "-i", str(ref), "-c:v", "libx264", "-crf", "35",
                    "-preset", "veryfast", str(dist)], check=True)
    return ref, dist


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gsvc: error:"), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_eval_json_table_and_csv(clip_pair):
    ref, dist = clip_pair
    result = run_gsvc_cli("eval", ref, dist, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["frame_count"] == 6 and len(data["frames"]) == 6
    assert data["msssim_scales"] == 3  # 96x64: a 4th scale would be 8 pixels high, under the 11 of a window
    mean = data["mean"]
    assert 25 < mean["psnr_y"] < 45 and 0.8 < mean["msssim_y"] < 1 and 0 < mean["vmaf"] <= 100
    assert abs(mean["psnr_yuv"] - (6 * mean["psnr_y"] + mean["psnr_u"] + mean["psnr_v"]) / 8) < 1e-9

    table = run_gsvc_cli("eval", ref, dist, "--metrics", "psnr,ssim")
    assert table.returncode == 0 and "PSNR Y" in table.stdout and "SSIM Y" in table.stdout
    assert "VMAF" not in table.stdout

    csv = run_gsvc_cli("eval", ref, dist, "--csv", "-m", "psnr", "--frames", "2")
    rows = csv.stdout.strip().splitlines()
    assert rows[0].startswith("frame,psnr_y,psnr_u,psnr_v") and len(rows) == 4 and rows[-1].startswith("mean")


def test_frame_count_mismatch_needs_frames(clip_pair):
    ref, _ = clip_pair
    longer = CARS
    assert_one_line_error(run_gsvc_cli("eval", ref, longer, "-m", "psnr"), 2, "8 frames", "--frames")
    ok = run_gsvc_cli("eval", ref, longer, "-m", "psnr", "--frames", "3", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["frame_count"] == 3
    assert json.loads(ok.stdout)["mean"]["psnr_y"] > 40  # the same decoded frames, re-wrapped
    other_size = HEADS
    assert_one_line_error(run_gsvc_cli("eval", ref, other_size, "--frames", "2"), 2, "64x48", "96x64")


def test_bad_inputs_fail_cleanly(clip_pair, tmp_path: Path):
    ref, _ = clip_pair
    missing = tmp_path / "missing.mp4"
    assert_one_line_error(run_gsvc_cli("eval", ref, missing), 1, str(missing), "no such file")
    assert_one_line_error(run_gsvc_cli("eval", tmp_path, ref), 1, str(tmp_path), "directory")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    assert_one_line_error(run_gsvc_cli("eval", ref, corrupt), 1, str(corrupt))
    empty = tmp_path / "empty.y4m"
    empty.write_bytes(b"YUV4MPEG2 W96 H64 F25:1 Ip C420jpeg\n")
    assert_one_line_error(run_gsvc_cli("eval", ref, empty), 1, str(empty), "no frames")
    odd_format = tmp_path / "c411.y4m"
    odd_format.write_bytes(b"YUV4MPEG2 W96 H64 F25:1 Ip C411\nFRAME\n" + bytes(96 * 64 * 3 // 2))
    assert_one_line_error(run_gsvc_cli("eval", ref, odd_format), 1, str(odd_format), "C411")
    raw = tmp_path / "clip.yuv"
    raw.write_bytes(bytes(96 * 64 * 3 // 2 * 2 + 7))
    assert_one_line_error(run_gsvc_cli("eval", raw, raw), 2, str(raw), "--size")
    assert_one_line_error(run_gsvc_cli("eval", raw, raw, "--size", "96x64", "--fps", "25", "--pix-fmt",
                                       "yuv420p"), 1, str(raw), "whole number")
    assert_one_line_error(run_gsvc_cli("eval", ref, ref, "--metrics", "psnr,bogus"), 2, "bogus")


def test_help_lists_every_option_and_ends_with_examples():
    result = run_gsvc_cli("eval", "--help")
    assert result.returncode == 0
    for option in ("--metrics", "--frames", "--start", "--json", "--csv", "--size", "--fps", "--pix-fmt",
                   "--quiet"):
        assert option in result.stdout
    assert "Examples:" in result.stdout and "gsvc eval source.y4m decoded.y4m" in result.stdout

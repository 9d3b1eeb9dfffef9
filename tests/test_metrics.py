"""gsvc_cli.metrics validated against tools no one here wrote (ffmpeg's psnr/ssim/libvmaf filters)
and against an independent scipy implementation of MS-SSIM."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import bundled_clip
from scipy import ndimage

from gsvc_cli.metrics import block_ssim, evaluate, ms_ssim, ms_ssim_scales, psnr, ssim

FRAMES = 4  # the bundled clip has at least this many


@pytest.fixture(scope="module")
def x264_pair(ffmpeg_exe: str, tmp_path_factory) -> tuple[Path, Path]:
    """A lossless real clip and its own x264 copy at a high crf (visible loss). The clip is the one
    the package bundles for its demo: at least 176 pixels on its short side, so that MS-SSIM uses
    all 5 scales."""
    ref = bundled_clip()
    dist = tmp_path_factory.mktemp("pair") / "bundled_crf38.mp4"
    subprocess.run([ffmpeg_exe, "-hide_banner", "-loglevel", "error", "-i", str(ref), "-frames:v",
                    str(FRAMES), "-c:v", "libx264", "-crf", "38", "-preset", "veryfast", str(dist)],
                   check=True)
    return ref, dist


def ffmpeg_stats(ffmpeg_exe: str, ref: Path, dist: Path, tmp: Path) -> tuple[list[dict], list[dict], list]:
    """Per-frame psnr and ssim stats lines and per-frame VMAF from ffmpeg's own filters. The reference
    is trimmed to FRAMES too: VMAF's motion feature of the last frame looks at the next one."""
    graph = (f"[0:v]split=3[d0][d1][d2];[1:v]trim=end_frame={FRAMES},split=3[r0][r1][r2];"
             f"[d0][r0]psnr=stats_file={tmp}/psnr.log;[d1][r1]ssim=stats_file={tmp}/ssim.log;"
             f"[d2][r2]libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path={tmp}/vmaf.json")
    subprocess.run([ffmpeg_exe, "-hide_banner", "-loglevel", "error", "-i", str(dist), "-i", str(ref),
                    "-frames:v", str(FRAMES), "-lavfi", graph, "-f", "null", "-"], check=True)

    def parse(path: Path) -> list[dict]:
        lines = path.read_text().splitlines()[:FRAMES]  # ffmpeg repeats DIST's last frame after it ends
        return [dict(re.findall(r"(\w+):([\d.]+|inf)", line)) for line in lines]

    import json

    vmaf = [f["metrics"]["vmaf"] for f in json.loads((tmp / "vmaf.json").read_text())["frames"]][:FRAMES]
    return parse(tmp / "psnr.log"), parse(tmp / "ssim.log"), vmaf


@pytest.fixture(scope="module")
def both_sides(x264_pair, ffmpeg_exe: str, tmp_path_factory):
    """(ours, ffmpeg's psnr lines, ffmpeg's ssim lines, ffmpeg's VMAF) for the pair, computed once."""
    ref, dist = x264_pair
    ours = evaluate(ref, dist, ("psnr", "ssim", "vmaf"), frames=FRAMES)
    psnr_log, ssim_log, vmaf = ffmpeg_stats(ffmpeg_exe, ref, dist, tmp_path_factory.mktemp("stats"))
    assert len(ours.frames) == len(psnr_log) == len(ssim_log) == len(vmaf) == FRAMES
    return ours, psnr_log, ssim_log, vmaf


def test_psnr_and_vmaf_agree_with_ffmpeg(both_sides):
    ours, psnr_log, _, vmaf = both_sides
    for row, p, v in zip(ours.frames, psnr_log, vmaf, strict=True):
        for plane in "yuv":
            # ffmpeg's stats file prints 2 decimals: agreement within 0.01 dB allows its rounding
            assert abs(row[f"psnr_{plane}"] - float(p[f"psnr_{plane}"])) <= 0.0051
        assert abs(row["vmaf"] - v) < 0.01
    # crf 38 leaves visible loss, so the comparison is not between two near-identical clips
    assert 20 < ours.mean["vmaf"] < 90 and 24 < ours.mean["psnr_y"] < 32


def test_ssim_agrees_with_ffmpeg(both_sides):
    ours, _, ssim_log, _ = both_sides
    for row, s in zip(ours.frames, ssim_log, strict=True):
        assert abs(row["ssim_y"] - float(s["Y"])) < 0.002


def _independent_ms_ssim(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    """MS-SSIM written from the paper with scipy, separately from gsvc's torch code."""
    half = 5
    xs = np.arange(-half, half + 1)
    g1 = np.exp(-(xs**2) / (2 * 1.5**2))
    win = np.outer(g1, g1)
    win /= win.sum()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    a, b = a.astype(np.float64), b.astype(np.float64)
    values = []
    for level in range(5):
        def blur(img):
            return ndimage.correlate(img, win, mode="constant")[half:-half, half:-half]
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a**2
        var_b = blur(b * b) - mu_b**2
        cov = blur(a * b) - mu_a * mu_b
        cs = (2 * cov + c2) / (var_a + var_b + c2)
        lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
        values.append(np.mean(cs) if level < 4 else np.mean(lum * cs))
        if level < 4:
            a = np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2)), mode="edge")
            b = np.pad(b, ((0, b.shape[0] % 2), (0, b.shape[1] % 2)), mode="edge")
            a = a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).mean(axis=(1, 3))
            b = b.reshape(b.shape[0] // 2, 2, b.shape[1] // 2, 2).mean(axis=(1, 3))
    return float(np.prod(np.array(values) ** weights))


def test_ms_ssim_matches_independent_implementation(x264_pair):
    from gsvc_cli.video import open_video

    ref, dist = x264_pair
    with open_video(ref, frames=2) as r, open_video(dist, frames=2) as d:
        for fr, fd in zip(r, d, strict=True):
            expected = _independent_ms_ssim(fr.y, fd.y, 255.0)
            got = float(ms_ssim(torch.from_numpy(fr.y.copy()).float(),
                                torch.from_numpy(fd.y.copy()).float(), 255.0))
            assert 0.5 < expected < 0.999
            assert abs(got - expected) < 1e-4


def test_tensor_metrics_basic_properties():
    torch.manual_seed(0)
    x = torch.rand(3, 64, 80)
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    assert psnr(x, x) == 100.0
    mse = float((x - noisy).square().mean())
    assert abs(psnr(x, noisy) - 10 * np.log10(1 / mse)) < 1e-6
    assert torch.allclose(ssim(x, x), torch.ones(1, 3))
    assert float(ms_ssim(x, noisy).mean()) < float(ms_ssim(x, (x + 0.01 * torch.randn_like(x))).mean())
    assert block_ssim(x[0] * 255, x[0] * 255) == pytest.approx(1.0)
    assert ms_ssim_scales(288, 352) == 5 and ms_ssim_scales(144, 176) == 4 and ms_ssim_scales(10, 10) == 0


def test_frame_psnr_without_rgb_gives_the_same_yuv_figures(x264_pair):
    """The encoder's per-frame report asks for the YUV figures alone (with_rgb=False): the same
    values as the full call, and no RGB figure."""
    from gsvc_cli.metrics.psnr import frame_psnr
    from gsvc_cli.video import open_video

    ref_path, dist_path = x264_pair
    with open_video(ref_path) as ref, open_video(dist_path) as dist:
        a, b = next(iter(ref)), next(iter(dist))
    full, yuv_only = frame_psnr(a, b), frame_psnr(a, b, with_rgb=False)
    assert "psnr_rgb" in full and "psnr_rgb" not in yuv_only
    assert yuv_only == {k: v for k, v in full.items() if k != "psnr_rgb"}
    assert 20.0 < yuv_only["psnr_yuv"] < 60.0

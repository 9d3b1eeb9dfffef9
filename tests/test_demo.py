"""gsvc demo: the README's main job, end to end on the bundled clip (one short run)."""

from __future__ import annotations

import re

from helpers import run_gsvc_cli
from PIL import Image

from gsvc_cli.commands.demo import DEMO_CLIP
from gsvc_cli.video import open_video


def test_bundled_clip_is_real_and_small():
    assert DEMO_CLIP.stat().st_size < 1_000_000
    source = (DEMO_CLIP.parent / "SOURCE.md").read_text()
    assert "intel/libvpl" in source and "MIT" in source
    licence = (DEMO_CLIP.parent / "LICENSE.cars_320x240_5f").read_text()
    assert licence.startswith("MIT License") and "Copyright (c) 2020 Intel Corporation" in licence
    with open_video(DEMO_CLIP) as reader:
        info = reader.info
        frames = list(reader)
    assert (info.width, info.height, info.frame_count, len(frames)) == (320, 240, 5, 5)


def test_demo_encodes_decodes_and_measures(tmp_path):
    out_dir = tmp_path / "demo"
    result = run_gsvc_cli("demo", "--frames", "1", "--preset", "fast", "--bpp", "0.2", "--out-dir", out_dir)
    assert result.returncode == 0, result.stderr
    encoded, decoded = out_dir / "demo.gsvc", out_dir / "demo_decoded.y4m"
    assert encoded.stat().st_size > 0
    with open_video(decoded) as reader:
        assert (reader.info.width, reader.info.height, len(list(reader))) == (320, 240, 1)
    figures = dict(re.findall(r"│ ([A-Za-z][^│]*?)\s+│\s+([^│]+?)\s+│", result.stdout))
    bpp = float(figures["bpp (target)"].split()[0])
    assert abs(bpp - 8 * encoded.stat().st_size / (320 * 240)) < 1e-3
    assert 15 < float(figures["PSNR YUV 6:1:1 (dB)"]) < 60
    assert 0 <= float(figures["VMAF (vmaf_v0.6.1)"]) <= 100
    assert 0 < float(figures["MS-SSIM Y"]) <= 1
    assert str(out_dir) in result.stdout + result.stderr
    # libx264 at the same rate, honestly next to it: a column of its own, at no more bits than gsvc's
    x264 = dict(re.findall(r"│ ([A-Za-z][^│]*?)\s+│\s+[^│]+?\s+│\s+([^│]*?)\s+│", result.stdout))
    x264_bpp = float(x264["bpp (target)"].split()[0])
    assert x264_bpp <= bpp + 1e-9 and 15 < float(x264["PSNR YUV 6:1:1 (dB)"]) < 60
    assert 8 * (out_dir / "demo_x264.264").stat().st_size / (320 * 240) >= x264_bpp  # + its SEI
    with open_video(out_dir / "demo_x264_decoded.y4m") as reader:
        assert len(list(reader)) == 1
    # the pictures: source | gsvc | libx264 side by side (labels underneath), and the splats
    with Image.open(out_dir / "demo_compare.png") as image:
        assert image.format == "PNG" and image.width >= 3 * 320 and image.height > 240
    with Image.open(out_dir / "demo_splats.png") as image:
        assert image.format == "PNG" and image.width >= 320 and image.height > 240
    # A second run refuses to replace the outputs (before encoding anything) and leaves them intact.
    before = encoded.read_bytes()
    again = run_gsvc_cli("demo", "--frames", "1", "--out-dir", out_dir)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert encoded.read_bytes() == before

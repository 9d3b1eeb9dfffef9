"""Time `gsvc eval` (PSNR + SSIM + MS-SSIM + VMAF) against ffmpeg's own psnr+ssim+libvmaf run.

Usage: python bench/eval.py [REF] [--crf 30] [--frames N]
Default REF: ../shared/data/clips_large/street_1080p_54f.mp4. The distorted copy is made with the
imageio-ffmpeg binary (libx264) in a temp dir. Both timings are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

DEFAULT_REF = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips_large" / "street_1080p_54f.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", nargs="?", type=Path, default=DEFAULT_REF)
    parser.add_argument("--crf", type=int, default=30)
    args = parser.parse_args()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp) / "dist.mp4"
        subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(args.ref), "-fps_mode", "passthrough",
                        "-c:v", "libx264", "-crf", str(args.crf), "-preset", "veryfast", str(dist)],
                       check=True)
        t0 = time.perf_counter()
        ours = subprocess.run([sys.executable, "-m", "gsvc_cli", "eval", str(args.ref), str(dist),
                               "--metrics", "psnr,ssim,msssim,vmaf", "--json"],
                              capture_output=True, text=True, check=True)
        t_ours = time.perf_counter() - t0
        graph = (f"[0:v]split=3[d0][d1][d2];[1:v]split=3[r0][r1][r2];[d0][r0]psnr;[d1][r1]ssim;"
                 f"[d2][r2]libvmaf=model=version=vmaf_v0.6.1:n_threads={os.cpu_count()}")
        t0 = time.perf_counter()
        theirs = subprocess.run([ffmpeg, "-hide_banner", "-i", str(dist), "-i", str(args.ref),
                                 "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True,
                                check=True)
        t_ff = time.perf_counter() - t0
    import json

    data = json.loads(ours.stdout)
    n = data["frame_count"]
    ff_lines = [ln for ln in theirs.stderr.splitlines() if "PSNR" in ln or "SSIM" in ln or "VMAF" in ln]
    print(f"pair: {args.ref.name} vs x264 crf {args.crf}, {n} frames, "
          f"{data['reference']['width']}x{data['reference']['height']}, {os.cpu_count()} CPUs")
    print(f"gsvc eval (psnr,ssim,msssim,vmaf): {t_ours:.2f} s ({n / t_ours:.2f} fps)  "
          f"psnr_y {data['mean']['psnr_y']:.3f}  ssim_y {data['mean']['ssim_y']:.4f}  "
          f"msssim_y {data['mean']['msssim_y']:.4f}  vmaf {data['mean']['vmaf']:.3f}")
    print(f"ffmpeg psnr+ssim+libvmaf:          {t_ff:.2f} s ({n / t_ff:.2f} fps)")
    for line in ff_lines:
        print("  " + line.split("] ", 1)[-1])
    print(f"ratio gsvc/ffmpeg: {t_ours / t_ff:.2f}")


if __name__ == "__main__":
    main()

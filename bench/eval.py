"""Time `gsvc eval` (PSNR + SSIM + MS-SSIM + VMAF) against ffmpeg's own psnr+ssim+libvmaf run.

Usage: python bench/eval.py [REF] [--crf 30] [--baseline REV]
Default REF: ../shared/data/clips_large/street_1080p_54f.mp4. The distorted copy is made with the
imageio-ffmpeg binary (libx264) in a temp dir. All timings are measured in the same run, as wall
time and as CPU time (user + sys of the child processes: on a shared, loaded machine the wall
time mostly measures the neighbours). Rows:
  gsvc all      gsvc eval --metrics psnr,ssim,msssim,vmaf (MS-SSIM on Y and RGB on top)
  gsvc like     gsvc eval --metrics psnr,ssim,vmaf (the figures ffmpeg's graph computes)
  gsvc REV      gsvc all, with the gsvc_cli package of git revision REV (--baseline)
  ffmpeg        ffmpeg -lavfi psnr, ssim and libvmaf on the same pair
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REF = ROOT.parent / "shared" / "data" / "clips_large" / "street_1080p_54f.mp4"


def timed(cmd: list[str], env: dict[str, str] | None = None
          ) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run cmd; return (result, wall seconds, CPU seconds of the process and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # cwd elsewhere: `python -m` puts the cwd first on sys.path, ahead of PYTHONPATH
    result = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                            cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, wall, cpu


def checkout(rev: str, into: Path) -> Path:
    """Extract gsvc_cli/ of git revision `rev` into `into`; return the folder for PYTHONPATH."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "gsvc_cli"], capture_output=True,
                         check=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", nargs="?", type=Path, default=DEFAULT_REF)
    parser.add_argument("--crf", type=int, default=30)
    parser.add_argument("--baseline", metavar="REV", help="also time gsvc eval at this git revision")
    args = parser.parse_args()
    args.ref = args.ref.resolve()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    gsvc = [sys.executable, "-m", "gsvc_cli", "eval"]
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp) / "dist.mp4"
        subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(args.ref), "-fps_mode", "passthrough",
                        "-c:v", "libx264", "-crf", str(args.crf), "-preset", "veryfast", str(dist)],
                       check=True)
        pair = [str(args.ref), str(dist), "--json"]
        ours, wall, cpu = timed(gsvc + pair + ["--metrics", "psnr,ssim,msssim,vmaf"])
        rows.append(("gsvc all (psnr,ssim,msssim,vmaf)", wall, cpu))
        _, wall, cpu = timed(gsvc + pair + ["--metrics", "psnr,ssim,vmaf"])
        rows.append(("gsvc like (psnr,ssim,vmaf)", wall, cpu))
        if args.baseline:
            env = {**os.environ, "PYTHONPATH": str(checkout(args.baseline, Path(tmp) / "baseline"))}
            _, wall, cpu = timed(gsvc + pair + ["--metrics", "psnr,ssim,msssim,vmaf"], env)
            rows.append((f"gsvc {args.baseline} (psnr,ssim,msssim,vmaf)", wall, cpu))
        graph = (f"[0:v]split=3[d0][d1][d2];[1:v]split=3[r0][r1][r2];[d0][r0]psnr;[d1][r1]ssim;"
                 f"[d2][r2]libvmaf=model=version=vmaf_v0.6.1:n_threads={os.cpu_count()}")
        theirs, wall, cpu = timed([ffmpeg, "-hide_banner", "-i", str(dist), "-i", str(args.ref),
                                   "-lavfi", graph, "-f", "null", "-"])
        rows.append(("ffmpeg psnr+ssim+libvmaf", wall, cpu))

    data = json.loads(ours.stdout)
    n = data["frame_count"]
    ff_lines = [ln for ln in theirs.stderr.splitlines() if "PSNR" in ln or "SSIM" in ln or "VMAF" in ln]
    load = os.getloadavg()[0]
    print(f"pair: {args.ref.name} vs x264 crf {args.crf}, {n} frames, "
          f"{data['reference']['width']}x{data['reference']['height']}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}")
    print(f"gsvc: psnr_y {data['mean']['psnr_y']:.3f}  ssim_y {data['mean']['ssim_y']:.4f}  "
          f"msssim_y {data['mean']['msssim_y']:.4f}  vmaf {data['mean']['vmaf']:.3f}")
    for line in ff_lines:
        print("ffmpeg: " + line.split("] ", 1)[-1])
    ff_wall, ff_cpu = rows[-1][1], rows[-1][2]
    print(f"{'':44s} {'wall s':>8s} {'fps':>6s} {'x ffmpeg':>8s} {'CPU s':>8s} {'x ffmpeg':>8s}")
    for label, wall, cpu in rows:
        print(f"{label:44s} {wall:8.2f} {n / wall:6.2f} {wall / ff_wall:8.2f} {cpu:8.2f} {cpu / ff_cpu:8.2f}")


if __name__ == "__main__":
    main()

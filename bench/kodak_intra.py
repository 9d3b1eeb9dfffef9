"""The I-frame coder alone on Kodak images, beside ffmpeg's JPEG and x264 intra at the same rate.

Usage: python bench/kodak_intra.py [--images 01 05 15 20 23] [--bpp 0.43 1.0] [--out DIR]

Per image and target rate: gsvc encodes the PNG as a one-frame video through the real CLI
(`python -m gsvc_cli encode img.png --bpp B --preset fast`) and decodes it to PNG; JPEG is
ffmpeg's mjpeg (4:2:0, the usual libjpeg default) with the -q:v whose file lands nearest to
gsvc's actual bpp; x264 is one intra frame (keyint=1, yuv420p, preset medium) with the crf
bisected to gsvc's bpp, as a raw H.264 stream without its SEI (the encoder-settings text).
All rates are file bits per pixel, everything counted. Quality is `gsvc eval` (RGB PSNR and YUV
6:1:1 PSNR) of each decoded PNG against the source PNG. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, cwd=tempfile.gettempdir(),
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def gsvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "gsvc_cli", *args]


def bpp_of(path: Path, pixels: int) -> float:
    return 8 * path.stat().st_size / pixels


def psnr(ref: Path, dist: Path) -> tuple[float, float]:
    """(RGB PSNR, YUV 6:1:1 PSNR) of `dist` against `ref` through `gsvc eval`."""
    out = subprocess.run(gsvc("eval", str(ref), str(dist), "--metrics", "psnr", "--json", "-q"),
                         check=True, capture_output=True, text=True, cwd=tempfile.gettempdir(),
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    means = json.loads(out)["mean"]
    return means["psnr_rgb"], means["psnr_yuv"]


def to_png(src: Path, png: Path) -> None:
    run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(src), "-frames:v", "1", "-pix_fmt", "rgb24", str(png)])


def jpeg_at(img: Path, target: float, pixels: int, work: Path) -> tuple[Path, float, int]:
    """The mjpeg file (q:v in 2..31) whose bpp is nearest to `target`."""
    best = None
    for q in range(2, 32):
        out = work / f"{img.stem}_q{q}.jpg"
        run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(img), "-c:v", "mjpeg", "-pix_fmt", "yuvj420p",
             "-q:v", str(q), "-frames:v", "1", str(out)])
        bpp = bpp_of(out, pixels)
        if best is None or abs(bpp - target) < abs(best[1] - target):
            best = (out, bpp, q)
        if bpp < target:
            break
    assert best is not None
    return best


def x264_at(img: Path, target: float, pixels: int, work: Path) -> tuple[Path, float, float]:
    """An x264 intra frame with the crf bisected (0.05 apart) to land nearest to `target`."""
    lo, hi = 0.0, 51.0
    best = None
    for _ in range(12):
        crf = round((lo + hi) / 2, 2)
        out = work / f"{img.stem}_crf{crf}.264"
        run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(img), "-c:v", "libx264", "-preset", "medium",
             "-x264-params", "keyint=1", "-crf", str(crf), "-pix_fmt", "yuv420p",
             "-bsf:v", "filter_units=remove_types=6", "-frames:v", "1", "-f", "h264", str(out)])
        bpp = bpp_of(out, pixels)
        if best is None or abs(bpp - target) < abs(best[1] - target):
            best = (out, bpp, crf)
        if bpp > target:
            lo = crf
        else:
            hi = crf
        if hi - lo < 0.05:
            break
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="*", default=["01", "05", "15", "20", "23"])
    parser.add_argument("--bpp", nargs="*", type=float, default=[0.43, 1.0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "gsvc_kodak_intra")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("| image | target bpp | gsvc bpp | gsvc RGB / YUV dB | splats | JPEG q | JPEG bpp "
          "| JPEG RGB / YUV dB | x264 crf | x264 bpp | x264 RGB / YUV dB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.images:
        img = KODAK / f"kodim{name}.png"
        import av

        with av.open(str(img)) as container:
            frame = next(container.decode(video=0))
            pixels = frame.width * frame.height
        for target in args.bpp:
            stem = args.out / f"kodim{name}_{target:g}bpp"
            coded = Path(f"{stem}.gsvc")
            run(gsvc("encode", str(img), "-o", str(coded), "--bpp", str(target), "--preset", args.preset,
                     "-y", "-q"))
            decoded = Path(f"{stem}_gsvc.png")
            run(gsvc("decode", str(coded), "-o", str(decoded), "-y", "-q"))
            g_bpp = bpp_of(coded, pixels)
            info = subprocess.run(gsvc("info", str(coded), "--json"), capture_output=True, text=True,
                                  cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": str(ROOT)})
            splats = "?"
            if info.returncode == 0:
                with contextlib.suppress(KeyError, IndexError, ValueError, TypeError):
                    splats = str(json.loads(info.stdout)["frames"][0]["splats"])
            g_rgb, g_yuv = psnr(img, decoded)
            jpg, j_bpp, q = jpeg_at(img, g_bpp, pixels, args.out)
            j_png = jpg.with_suffix(".png")
            to_png(jpg, j_png)
            j_rgb, j_yuv = psnr(img, j_png)
            h264, x_bpp, crf = x264_at(img, g_bpp, pixels, args.out)
            x_png = h264.with_suffix(".png")
            to_png(h264, x_png)
            x_rgb, x_yuv = psnr(img, x_png)
            print(f"| kodim{name} | {target} | {g_bpp:.3f} | {g_rgb:.2f} / {g_yuv:.2f} | {splats} | {q} "
                  f"| {j_bpp:.3f} | {j_rgb:.2f} / {j_yuv:.2f} | {crf} | {x_bpp:.3f} "
                  f"| {x_rgb:.2f} / {x_yuv:.2f} |", flush=True)


if __name__ == "__main__":
    main()

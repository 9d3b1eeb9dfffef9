"""Rate-distortion benchmark: gsvc against libx264 (medium, veryslow), libx265 (medium) and SVT-AV1.

    python bench/rd.py [--clips NAME ...] [--frames 0] [--preset fast]
                       [--gsvc rd=quality:27,30,33,36 [norev=quality:27,30,33,36:rd_changes=0 ...]]
                       [--clip-variants CLIP ...] [--codecs x264-medium x264-veryslow x265-medium svtav1]
                       [--no-large]
    python bench/rd.py --summary-only        # rebuild the summary from bench/results/rd_*.json

For each clip (default: every clip in ../shared/data/clips) its frames (all, or the first --frames N)
are written once to a temporary Y4M, which every codec then reads, so all see identical input. gsvc
encodes them for every curve of --gsvc (the first is the main curve; the others are ablations, each
idea switched off through RDTuning, or the old bpp rate control) at each of its values
(encode_video, in process) and decodes the file (decode_video, entropy decoding
and rendering included) to Y4M; the baselines run through the imageio-ffmpeg binary on a fixed CRF
ladder that reaches from far below gsvc's quality to above its top rate, writing raw elementary
streams (.264/.265/.ivf; x264's and x265's encoder-settings SEI NAL units are stripped, since they
are not video), decoded back to Y4M by ffmpeg. Every decoded output is scored against the Y4M
with gsvc_cli.metrics.evaluate: PSNR (Y, U, V, YUV 6:1:1, RGB), MS-SSIM (Y, RGB) and VMAF.
bpp = file bits / (W x H x frames), everything in the file counted.

BD-rate (bench/bdrate.py, Bjøntegaard, cubic fit of log rate against quality) of gsvc against each
baseline, on PSNR-YUV and on VMAF, over the quality interval both cover: the baseline curve is
restricted to its points inside gsvc's quality range plus the nearest one on either side. Negative
= gsvc needs fewer bits. Also per gsvc point: each baseline's PSNR at the same bpp, interpolated
linearly in log rate between ladder points (blank where the ladder does not reach).

Outputs in --out (bench/results): rd_<clip>.csv (one row per RD point), rd_<clip>.json (points,
gsvc per-frame reports with bits per splat by frame type, BD-rates, settings), rd_<clip>.png (RD
plot), rd_decode_1080p.json, rd_summary.json and rd_summary.md (the tables for BENCHMARKS.md).
Timings are wall clock on whatever machine runs it; the load average at each measurement is kept.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bdrate import bd_quality, bd_rate, overlap  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CLIPS_DIR = SHARED / "clips"
LARGE_CLIP = SHARED / "clips_large" / "street_1080p_54f.mp4"
DEFAULT_GSVC = ("rd=quality:27,30,33,36",)
METRICS = ("psnr", "msssim", "vmaf")
FIGURES = ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "psnr_rgb", "msssim_y", "msssim_rgb", "vmaf")

# Motion class of each core clip (from ../shared/data/README.md); "low" clips carry the P/I target.
MOTION = {
    "foreman_cif_300f_intra": "low",  # first frames: talking head, small hand-held shake
    "foreman_cif_60f": "low",
    "vt2people_320x192_9f": "low",
    "mobile_cif_30f": "medium",
    "cuts_qcif_62f": "cuts",
    "cars_320x240_30f": "high",
    "pan_kodim23_cif_48f": "pan",
    "scenecut_kodim05_kodim14_cif_48f": "zoom/cut",
}

# Baselines: encoder, its options, a CRF ladder (low quality first), raw stream format and the
# bitstream filter that drops the encoder's settings SEI (x264: NAL type 6; x265: 39/40).
CODECS: dict[str, dict[str, Any]] = {
    "x264-medium": {"lib": "libx264", "opts": ["-preset", "medium"], "fmt": "h264", "ext": ".264",
                    "crf": [51, 46, 41, 36, 31, 26, 21, 16, 11, 6], "bsf": "filter_units=remove_types=6"},
    "x264-veryslow": {"lib": "libx264", "opts": ["-preset", "veryslow"], "fmt": "h264", "ext": ".264",
                      "crf": [51, 46, 41, 36, 31, 26, 21, 16, 11, 6], "bsf": "filter_units=remove_types=6"},
    "x265-medium": {"lib": "libx265", "opts": ["-preset", "medium", "-x265-params", "log-level=error"],
                    "fmt": "hevc", "ext": ".265", "crf": [51, 46, 41, 36, 31, 26, 21, 16, 11, 6],
                    "bsf": "filter_units=remove_types=39|40"},
    "svtav1": {"lib": "libsvtav1", "opts": ["-preset", "8"], "fmt": "ivf", "ext": ".ivf",
               "crf": [63, 57, 51, 45, 39, 33, 27, 21, 15, 9], "bsf": None},
}
STYLE = {"gsvc": ("k", "o"), "x264-medium": ("tab:blue", "s"), "x264-veryslow": ("tab:cyan", "s"),
         "x265-medium": ("tab:green", "^"), "svtav1": ("tab:red", "v")}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _git_commit() -> str:
    """HEAD when the run started (the codec is imported then), '+dirty' if gsvc_cli/ had local edits."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "gsvc_cli"],
                           capture_output=True, text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


_COMMIT = _git_commit()


def git_commit() -> str:
    return _COMMIT


def load() -> float:
    return round(os.getloadavg()[0], 2)


# ----------------------------------------------------------------------------------------------
def write_reference(src: Path, dst: Path, frames: int) -> dict[str, Any]:
    """The first `frames` frames of `src` as a Y4M: the one input every codec reads."""
    from gsvc_cli.video import open_video, open_writer

    with open_video(src, frames=frames) as reader, open_writer(dst, reader.info, overwrite=True) as writer:
        n = 0
        for frame in reader:
            writer.write(frame)
            n += 1
        info = reader.info
    return {"width": info.width, "height": info.height, "frames": n, "fps": str(info.fps),
            "pix_fmt": info.pix_fmt}


def count_frames(path: Path) -> int:
    from gsvc_cli.video import open_video

    with open_video(path) as reader:
        return sum(1 for _ in reader)


def score(ref: Path, dist: Path, frames: int) -> dict[str, float]:
    from gsvc_cli.metrics import evaluate

    result = evaluate(ref, dist, metrics=METRICS, frames=frames)
    return {k: round(float(v), 4) for k, v in result.mean.items() if k in FIGURES}


def parse_variant(spec: str) -> dict[str, Any]:
    """NAME=MODE:V1,V2,...[:FIELD=VALUE...] -> a gsvc curve: MODE is quality or bpp, FIELD=VALUE
    set fields of gsvc_cli.codec.encoder.rd.RDTuning (ablations), e.g. norev=quality:30,34:rd_changes=0."""
    name, rest = spec.split("=", 1)
    mode, values, *opts = rest.split(":")
    if mode not in ("quality", "bpp"):
        raise ValueError(f"--gsvc {spec}: mode must be quality or bpp")
    from gsvc_cli.codec.encoder.rd import RDTuning

    defaults = RDTuning()
    tuning: dict[str, Any] = {}
    for opt in opts:
        key, value = opt.split("=", 1)
        if not hasattr(defaults, key):
            raise ValueError(f"--gsvc {spec}: RDTuning has no field {key}")
        kind = type(getattr(defaults, key))  # bool before int: bool is an int subclass
        tuning[key] = bool(int(value)) if kind is bool else kind(float(value)) if kind is int else kind(value)
    return {"name": name, "mode": mode, "values": [float(v) for v in values.split(",")], "tuning": tuning}


def run_gsvc(ref: Path, work: Path, variant: dict[str, Any], value: float, codec: str, preset: str, gop: int,
             frames: int, pixels: int) -> dict[str, Any]:
    from gsvc_cli.codec.decoder import decode_video
    from gsvc_cli.codec.encoder.gop import EncoderSettings, encode_video
    from gsvc_cli.codec.encoder.rate_control import RateTarget
    from gsvc_cli.codec.encoder.rd import RDTuning
    from gsvc_cli.video import open_video

    mode = variant["mode"]
    tag = f"{variant['name']}_{preset}_{mode}{value:g}"
    out = work / f"gsvc_{tag}.gsvc"
    dec = work / f"gsvc_{tag}.y4m"
    load_before = load()
    settings = EncoderSettings(RateTarget(**{mode: value}), preset=preset, gop=gop,
                               tuning=RDTuning(**variant["tuning"]))
    with open_video(ref, frames=frames) as reader:
        summary = encode_video(reader, reader.info, out, settings, frame_count=frames, overwrite=True)
    size = out.stat().st_size
    d = decode_video(out, dec, overwrite=True)
    if count_frames(dec) != frames:
        raise RuntimeError(f"gsvc {tag}: decoded {count_frames(dec)} frames, expected {frames}")
    bpp = value if mode == "bpp" else 8.0 * size / (pixels * frames)
    point: dict[str, Any] = {
        "codec": codec, "setting": f"{mode}={value:g}", "target_bpp": bpp, "preset": preset, "bytes": size,
        "bpp": 8.0 * size / (pixels * frames),
        "enc_s_per_frame": summary.seconds / frames, "dec_fps": d.frames / d.seconds,
        "load_enc": load_before, "load_dec": load(),
        "frames_report": [
            {"index": f.index, "type": f.frame_type, "n_splats": f.n_splats, "n_new": f.n_new,
             "n_deleted": f.n_deleted, "bits": f.bits, "psnr": round(f.psnr, 4),
             "psnr_fit": round(f.psnr_fit, 4), "seconds": round(f.seconds, 2), "scene_cut": f.scene_cut,
             "bits_per_splat": {k: round(v, 3) for k, v in f.bits_per_splat.items()}}
            for f in summary.frames],
    }
    point["bpp_error_pct"] = 100.0 * (point["bpp"] / bpp - 1.0)
    point.update(bits_per_splat_by_type(point["frames_report"]))
    total_bits = sum(f.bits for f in summary.frames)
    point["i_share"] = sum(f.bits for f in summary.frames if f.frame_type == "I") / max(1, total_bits)
    point["m_share"] = sum(f.bits for f in summary.frames if f.frame_type == "M") / max(1, total_bits)
    point.update(score(ref, dec, frames))
    dec.unlink(missing_ok=True)
    return point


def bits_per_splat_by_type(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean coded bits per splat (whole payload / splats in the frame) of I- and of P-frames, and
    the count of each frame type (M-frames have no splats)."""
    out: dict[str, Any] = {}
    for t in ("I", "P", "M"):
        vals = [r["bits_per_splat"]["total"] for r in reports if r["type"] == t and r["n_splats"]]
        out[f"bps_{t}"] = sum(vals) / len(vals) if vals else None
        out[f"n_{t}"] = len([r for r in reports if r["type"] == t])
    out["p_over_i"] = out["bps_P"] / out["bps_I"] if out["bps_I"] and out["bps_P"] is not None else None
    return out


def run_baseline(name: str, crf: int, ref: Path, work: Path, frames: int, pixels: int) -> dict[str, Any]:
    spec = CODECS[name]
    ff = ffmpeg_exe()
    out = work / f"{name}_crf{crf}{spec['ext']}"
    dec = work / f"{name}_crf{crf}.y4m"
    cmd = [ff, "-nostdin", "-v", "error", "-y", "-i", str(ref), "-frames:v", str(frames), "-an",
           "-c:v", spec["lib"], *spec["opts"], "-crf", str(crf), "-pix_fmt", "yuv420p"]
    if spec["bsf"]:
        cmd += ["-bsf:v", spec["bsf"]]
    cmd += ["-f", spec["fmt"], str(out)]
    env = {**os.environ, "SVT_LOG": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    enc_s = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"{name} crf {crf} failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    t0 = time.perf_counter()
    # passthrough: one output frame per coded frame. Without it ffmpeg resamples the raw stream's
    # guessed 25 fps to the y4m rate and duplicates frames (seen on the 12 fps clip).
    proc = subprocess.run([ff, "-nostdin", "-v", "error", "-y", "-i", str(out), "-fps_mode", "passthrough",
                           "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(dec)],
                          capture_output=True, text=True)
    dec_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{name} crf {crf}: decoding failed\n{proc.stderr[-2000:]}")
    decoded = count_frames(dec)
    if decoded != frames:
        raise RuntimeError(f"{name} crf {crf}: decoded {decoded} frames, expected {frames}")
    size = out.stat().st_size
    point: dict[str, Any] = {"codec": name, "setting": f"crf={crf}", "crf": crf, "bytes": size,
                             "bpp": 8.0 * size / (pixels * frames), "enc_s_per_frame": enc_s / frames,
                             "dec_fps": frames / dec_s, "load_enc": load()}
    point.update(score(ref, dec, frames))
    dec.unlink(missing_ok=True)
    return point


# ----------------------------------------------------------------------------------------------
def bracket(points: list[dict[str, Any]], key: str, lo: float, hi: float) -> list[dict[str, Any]]:
    """Points with `key` in [lo, hi] plus the nearest one below lo and above hi (sorted by key)."""
    pts = sorted((p for p in points if p.get(key) is not None), key=lambda p: p[key])
    inside = [p for p in pts if lo <= p[key] <= hi]
    below = [p for p in pts if p[key] < lo]
    above = [p for p in pts if p[key] > hi]
    return below[-1:] + inside + above[:1]


def bd_against(gsvc: list[dict[str, Any]], base: list[dict[str, Any]], key: str) -> dict[str, Any]:
    qs = [p[key] for p in gsvc if p.get(key) is not None]
    if len(qs) < 2:
        return {"bd_rate": None, "bd_quality": None, "overlap": None}
    anchor = bracket(base, key, min(qs), max(qs))
    a = [(p["bpp"], p[key]) for p in anchor]
    t = [(p["bpp"], p[key]) for p in gsvc]
    rate = bd_rate(a, t)
    qual = bd_quality(a, t)
    ov = overlap(a, t)
    return {"bd_rate": None if rate is None else round(rate, 2),
            "bd_quality": None if qual is None else round(qual, 3),
            "overlap": None if ov is None else [round(ov[0], 3), round(ov[1], 3)],
            "anchor_points": [p["setting"] for p in anchor]}


def quality_at_rate(base: list[dict[str, Any]], bpp: float, key: str) -> float | None:
    """`key` of a baseline at `bpp`, linear in log rate between its two neighbouring ladder points."""
    pts = sorted((p for p in base if p.get(key) is not None), key=lambda p: p["bpp"])
    for a, b in zip(pts, pts[1:], strict=False):
        if a["bpp"] <= bpp <= b["bpp"] and b["bpp"] > a["bpp"]:
            w = (math.log(bpp) - math.log(a["bpp"])) / (math.log(b["bpp"]) - math.log(a["bpp"]))
            return round(a[key] + w * (b[key] - a[key]), 3)
    return None


def plot(clip: str, points: list[dict[str, Any]], path: Path, frames: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.2), dpi=80)
    for codec in [*dict.fromkeys(p["codec"] for p in points if p["codec"].startswith("gsvc")), *CODECS]:
        pts = sorted((p for p in points if p["codec"] == codec), key=lambda p: p["bpp"])
        if not pts:
            continue
        colour, marker = STYLE.get(codec, ("gray", "x"))
        for ax, key in zip(axes, ("psnr_yuv", "vmaf"), strict=True):
            ax.plot([p["bpp"] for p in pts], [p.get(key) for p in pts], color=colour, marker=marker,
                    ms=3.5, lw=1.6 if codec == "gsvc" else 1.0, label=codec)
    for ax, label in zip(axes, ("PSNR YUV 6:1:1 (dB)", "VMAF"), strict=True):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("bpp (file bits / pixel / frame)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", lw=0.3, alpha=0.6)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{clip}: {frames} frames", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_csv(path: Path, points: list[dict[str, Any]], clip: str, meta: dict[str, Any]) -> None:
    cols = ["clip", "width", "height", "frames", "codec", "setting", "bytes", "bpp", *FIGURES,
            "enc_s_per_frame", "dec_fps", "target_bpp", "bpp_error_pct", "bps_I", "bps_P", "p_over_i"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for p in points:
            row = {"clip": clip, "width": meta["width"], "height": meta["height"], "frames": meta["frames"],
                   **p}
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


# ----------------------------------------------------------------------------------------------
def run_clip(src: Path, args: argparse.Namespace, work_root: Path, out_dir: Path) -> dict[str, Any]:
    clip = src.stem
    work = work_root / clip
    work.mkdir(parents=True, exist_ok=True)
    ref = work / "ref.y4m"
    meta = write_reference(src, ref, args.frames or None)
    frames = meta["frames"]
    pixels = meta["width"] * meta["height"]
    cache_path = work_root / f"{clip}_points_f{frames}.json"
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.exists() and args.resume else {}
    points: list[dict[str, Any]] = []

    def get(key: str, fn: Any) -> dict[str, Any]:
        if key not in cache:
            cache[key] = fn()
            cache_path.write_text(json.dumps(cache))
        return cache[key]

    log(f"{clip}: {meta['width']}x{meta['height']}, {frames} frames")
    variants = [parse_variant(v) for v in args.gsvc]
    if args.clip_variants and clip not in args.clip_variants:
        variants = variants[:1]  # ablations only on the clips named
    curves = []
    for i, variant in enumerate(variants):
        codec = "gsvc" if i == 0 else f"gsvc:{variant['name']}"
        curves.append(codec)
        for value in variant["values"]:
            key = f"{codec}|{args.preset}|gop{args.gop}|{variant['mode']}{value:g}|{variant['tuning']}"
            p = get(key, lambda variant=variant, value=value, codec=codec: run_gsvc(
                ref, work, variant, value, codec, args.preset, args.gop, frames, pixels))
            points.append(p)
            log(f"  {codec} {variant['mode']}={value:g}: {p['bpp']:.4f} bpp, PSNR-YUV {p['psnr_yuv']:.2f}, "
                f"VMAF {p['vmaf']:.1f}, I {p['n_I']} P {p['n_P']}, enc {p['enc_s_per_frame']:.1f} s/f, "
                f"dec {p['dec_fps']:.1f} fps, bits/splat I {p['bps_I'] or float('nan'):.1f} "
                f"P {p['bps_P'] or float('nan'):.1f}")
    for name in args.codecs:
        for crf in CODECS[name]["crf"]:
            p = get(f"{name}|{crf}",
                    lambda name=name, crf=crf: run_baseline(name, crf, ref, work, frames, pixels))
            points.append(p)
        pts = [p for p in points if p["codec"] == name]
        log(f"  {name}: {len(pts)} points, {min(p['bpp'] for p in pts):.4f}..{max(p['bpp'] for p in pts):.3f}"
            f" bpp, PSNR-YUV {min(p['psnr_yuv'] for p in pts):.2f}..{max(p['psnr_yuv'] for p in pts):.2f}")

    gsvc = [p for p in points if p["codec"] == "gsvc"]
    bd = {name: {key: bd_against(gsvc, [p for p in points if p["codec"] == name], key)
                 for key in ("psnr_yuv", "vmaf")} for name in args.codecs}
    # Each other gsvc curve: against x264 medium, and the main curve against it (negative: the main
    # curve saves bits over this variant, i.e. what the switched-off idea is worth).
    ablation = {c: {"x264-medium": {key: bd_against([p for p in points if p["codec"] == c],
                                                    [p for p in points if p["codec"] == "x264-medium"], key)
                                    for key in ("psnr_yuv", "vmaf")},
                    "main_vs_this": {key: bd_against(gsvc, [p for p in points if p["codec"] == c], key)
                                     for key in ("psnr_yuv", "vmaf")}}
                for c in curves[1:]}
    matched = [{"target_bpp": g["target_bpp"], "bpp": g["bpp"], "gsvc_psnr_yuv": g["psnr_yuv"],
                **{name: quality_at_rate([p for p in points if p["codec"] == name], g["bpp"], "psnr_yuv")
                   for name in args.codecs}} for g in gsvc]
    ratios = [g["p_over_i"] for g in gsvc if g.get("p_over_i") is not None]
    result = {
        "clip": clip, "source": str(src), "motion": MOTION.get(clip, "?"), **meta, "preset": args.preset,
        "gop": args.gop, "codecs": list(args.codecs),
        "ffmpeg": ffmpeg_exe().rsplit("-", 1)[-1], "points": points, "bd": bd, "ablation": ablation,
        "variants": [{**v, "codec": c} for v, c in zip(variants, curves, strict=True)],
        "psnr_yuv_at_gsvc_rate": matched,
        "p_over_i_mean": sum(ratios) / len(ratios) if ratios else None,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"), "commit": git_commit(),
    }
    (out_dir / f"rd_{clip}.json").write_text(json.dumps(result, indent=1))
    write_csv(out_dir / f"rd_{clip}.csv", points, clip, meta)
    plot(clip, points, out_dir / f"rd_{clip}.png", frames)
    for name in args.codecs:
        log(f"  BD-rate vs {name}: PSNR-YUV {fmt_pct(bd[name]['psnr_yuv']['bd_rate'])}, "
            f"VMAF {fmt_pct(bd[name]['vmaf']['bd_rate'])}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def decode_1080p(args: argparse.Namespace, work_root: Path, out_dir: Path) -> dict[str, Any]:
    """Encode a few 1080p frames, then time decoding them from the file (entropy decoding included)."""
    import torch

    from gsvc_cli.codec.bitstream.container import GsvcReader
    from gsvc_cli.codec.decoder import decode_frames, decode_video
    from gsvc_cli.codec.encoder.gop import EncoderSettings, encode_video
    from gsvc_cli.codec.encoder.rate_control import RateTarget
    from gsvc_cli.video import open_video

    work = work_root / "large"
    work.mkdir(parents=True, exist_ok=True)
    out = work / "street.gsvc"
    n = args.large_frames
    log(f"1080p: encoding {n} frames of {LARGE_CLIP.name} at {args.large_bpp:g} bpp, "
        f"preset {args.large_preset}")
    with open_video(LARGE_CLIP, frames=n) as reader:
        summary = encode_video(reader, reader.info, out,
                               EncoderSettings(RateTarget(bpp=args.large_bpp), preset=args.large_preset),
                               frame_count=n, overwrite=True)
    runs = []
    for _ in range(args.large_repeats):
        la = load()
        t0, c0 = time.perf_counter(), time.process_time()
        with GsvcReader(out) as reader:
            count = sum(1 for _ in decode_frames(reader))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        d = decode_video(out, work / "street.y4m", overwrite=True)
        wall_file = time.perf_counter() - t0
        runs.append({"render_fps": count / wall, "render_cpu_s_per_frame": cpu / count,
                     "to_y4m_fps": d.frames / wall_file, "load": la})
    best = max(runs, key=lambda r: r["render_fps"])
    result = {"clip": LARGE_CLIP.name, "frames": n, "target_bpp": args.large_bpp, "preset": args.large_preset,
              "bpp": summary.bpp, "psnr_yuv_encoder": summary.mean_psnr,
              "splats": [f.n_splats for f in summary.frames], "types": [f.frame_type for f in summary.frames],
              "enc_s_per_frame": summary.seconds / n, "torch_threads": torch.get_num_threads(),
              "runs": runs, "best_render_fps": best["render_fps"], "commit": git_commit(),
              "best_to_y4m_fps": max(r["to_y4m_fps"] for r in runs)}
    (out_dir / "rd_decode_1080p.json").write_text(json.dumps(result, indent=1))
    log(f"1080p: {result['bpp']:.4f} bpp, decode (file -> YUV frames) {result['best_render_fps']:.2f} fps, "
        f"file -> y4m {result['best_to_y4m_fps']:.2f} fps (best of {len(runs)}, load {best['load']})")
    return result


# ----------------------------------------------------------------------------------------------
def fmt_pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def summarise(out_dir: Path, codecs: list[str]) -> str:
    clips = [json.loads(p.read_text()) for p in sorted(out_dir.glob("rd_*.json"))
             if p.name not in ("rd_summary.json", "rd_decode_1080p.json")]
    lines: list[str] = []
    if not clips:
        return "no results"
    c0 = clips[0]
    lines.append(f"Frames per clip: {', '.join(str(c['frames']) for c in clips)}; gsvc preset "
                 f"{c0['preset']}, gop {c0['gop']}, main curve {c0.get('variants', [{}])[0]}.")
    lines.append("")
    lines.append("BD-rate of gsvc (PSNR-YUV 6:1:1 / VMAF; negative = gsvc saves bits; n/a = no overlap):")
    lines.append("")
    lines.append("| clip | motion | " + " | ".join(codecs) + " | P/I bits per splat |")
    lines.append("|---|---|" + "---|" * len(codecs) + "---|")
    for c in clips:
        cells = [f"{fmt_pct(c['bd'][n]['psnr_yuv']['bd_rate'])} / {fmt_pct(c['bd'][n]['vmaf']['bd_rate'])}"
                 for n in codecs if n in c["bd"]]
        lines.append(f"| {c['clip']} | {c['motion']} | " + " | ".join(cells)
                     + f" | {fmt(c['p_over_i_mean'], '.2f')} |")
    lines.append("")
    lines.append("gsvc points, and each baseline's PSNR-YUV at gsvc's bpp (interpolated on its CRF ladder):")
    lines.append("")
    lines.append("| clip | setting | bpp | PSNR-YUV | PSNR-RGB | MS-SSIM | VMAF | enc s/f | dec fps "
                 "| I-frames | M-frames | I / M share of bits | bits/splat I / P | "
                 + " | ".join(codecs) + " |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(codecs))
    for c in clips:
        for g, m in zip([p for p in c["points"] if p["codec"] == "gsvc"], c["psnr_yuv_at_gsvc_rate"],
                        strict=True):
            lines.append(
                f"| {c['clip']} | {g['setting']} | {g['bpp']:.3f} "
                f"| {g['psnr_yuv']:.2f} | {g['psnr_rgb']:.2f} | {g['msssim_rgb']:.4f} | {g['vmaf']:.1f} "
                f"| {g['enc_s_per_frame']:.1f} | {g['dec_fps']:.1f} | {g['n_I']} | {g.get('n_M', 0)} "
                f"| {fmt(g.get('i_share'), '.2f')} / {fmt(g.get('m_share'), '.2f')} "
                f"| {fmt(g['bps_I'], '.1f')} / "
                f"{fmt(g['bps_P'], '.1f')} | " + " | ".join(fmt(m.get(n)) for n in codecs) + " |")
    ablations = [(c, name, a) for c in clips for name, a in c.get("ablation", {}).items()]
    if ablations:
        lines.append("")
        lines.append("Ablations (same run): each curve's BD-rate against x264 medium, and the main curve's "
                     "BD-rate against it (negative = the main curve saves that share of bits), "
                     "PSNR-YUV / VMAF:")
        lines.append("")
        lines.append("| clip | curve | vs x264 medium | main vs this |")
        lines.append("|---|---|---|---|")
        for c, name, a in ablations:
            x, m = a["x264-medium"], a["main_vs_this"]
            lines.append(f"| {c['clip']} | {name} | {fmt_pct(x['psnr_yuv']['bd_rate'])} / "
                         f"{fmt_pct(x['vmaf']['bd_rate'])} | {fmt_pct(m['psnr_yuv']['bd_rate'])} / "
                         f"{fmt_pct(m['vmaf']['bd_rate'])} |")
    lines.append("")
    lines.append("Baseline points (bpp, PSNR-YUV, VMAF) per CRF, low rate first:")
    lines.append("")
    for c in clips:
        lines.append(f"- {c['clip']}:")
        for n in codecs:
            pts = sorted((p for p in c["points"] if p["codec"] == n), key=lambda p: p["bpp"])
            lines.append(f"  - {n} (crf: bpp, PSNR-YUV, VMAF): " + "; ".join(
                f"{p['setting'].split('=')[1]}: {p['bpp']:.3f}, {p['psnr_yuv']:.2f}, {p['vmaf']:.1f}"
                for p in pts))
    large = out_dir / "rd_decode_1080p.json"
    if large.exists():
        d = json.loads(large.read_text())
        lines.append("")
        lines.append(f"1080p decode ({d['clip']}, {d['frames']} frames at {d['bpp']:.3f} bpp, preset "
                     f"{d['preset']}): {d['best_render_fps']:.2f} fps file -> decoded YUV frames, "
                     f"{d['best_to_y4m_fps']:.2f} fps file -> y4m (best of {len(d['runs'])}; load "
                     f"{', '.join(str(r['load']) for r in d['runs'])}).")
    text = "\n".join(lines)
    (out_dir / "rd_summary.md").write_text(text + "\n")
    (out_dir / "rd_summary.json").write_text(json.dumps(
        {"clips": {c["clip"]: {"bd": c["bd"], "p_over_i_mean": c["p_over_i_mean"],
                               "gsvc": [{k: v for k, v in p.items() if k != "frames_report"}
                                        for p in c["points"] if p["codec"] == "gsvc"]} for c in clips}},
        indent=1, default=str))
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", nargs="+", help="clip names (file stems or substrings) or paths; default all")
    ap.add_argument("--frames", type=int, default=0, help="first N frames of each clip (default 0: all)")
    ap.add_argument("--gsvc", nargs="+", default=list(DEFAULT_GSVC), metavar="NAME=MODE:VALUES[:FIELD=V]",
                    help="gsvc curves: the first is the main one; the others are ablations or old modes")
    ap.add_argument("--clip-variants", nargs="*", default=None,
                    help="run the curves after the first only on these clips (default: every clip)")
    ap.add_argument("--preset", default="fast", choices=("fast", "medium", "slow"))
    ap.add_argument("--gop", type=int, default=60)
    ap.add_argument("--codecs", nargs="+", default=list(CODECS), choices=list(CODECS))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gsvc_rd"))
    ap.add_argument("--no-large", action="store_true", help="skip the 1080p decode-speed measurement")
    ap.add_argument("--only-large", action="store_true", help="only the 1080p decode-speed measurement")
    ap.add_argument("--large-frames", type=int, default=3)
    ap.add_argument("--large-bpp", type=float, default=0.1)
    ap.add_argument("--large-preset", default="fast")
    ap.add_argument("--large-repeats", type=int, default=3)
    ap.add_argument("--resume", action="store_true",
                    help="reuse points already measured in --work (keyed by curve, preset, gop, value "
                         "and RDTuning overrides, not by commit; the first curve is keyed 'gsvc' "
                         "whatever its name, so a renamed main curve reuses the last main's points)")
    ap.add_argument("--keep", action="store_true", help="keep the work files")
    ap.add_argument("--summary-only", action="store_true", help="rebuild the summary from --out")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.summary_only:
        print(summarise(args.out, args.codecs))
        return 0
    log(f"gsvc RD benchmark: {platform.node()} {os.cpu_count()} CPUs, load {load()}, python "
        f"{platform.python_version()}; frames per clip {args.frames or 'all'}, preset {args.preset}, "
        f"gsvc curves {args.gsvc}")
    if not args.only_large:
        all_clips = sorted(CLIPS_DIR.glob("*.*"))
        if args.clips:
            chosen = []
            for c in args.clips:
                if Path(c).is_file():
                    chosen.append(Path(c))
                    continue
                hits = [p for p in all_clips if c == p.stem] or [p for p in all_clips if c in p.name]
                if not hits:
                    ap.error(f"--clips {c}: no such clip in {CLIPS_DIR}")
                chosen += hits
        else:
            chosen = all_clips
        for src in dict.fromkeys(chosen):
            t0 = time.perf_counter()
            run_clip(src, args, args.work, args.out)
            log(f"{src.stem}: done in {time.perf_counter() - t0:.0f} s")
    if not args.no_large:
        decode_1080p(args, args.work, args.out)
    print()
    print(summarise(args.out, args.codecs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

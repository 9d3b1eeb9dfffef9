"""Scaling of chunked encoding on Ray: 1 vs 2 local workers, a simulated multi-node cluster, the
projection to 16 nodes, the RD cost of chunk boundaries, and resume after a random interrupt.

Usage: python bench/scaling.py [CLIP] [--frames 24] [--gop 4] [--preset fast] [--bpp 0.4]
                               [--skip cluster,rd,resume] [--json OUT]
Prints every figure BENCHMARKS.md "Scaling" quotes. Every run encodes the same chunk plan, so all
files must be byte-identical (checked). Timings: wall clock of the encode; Ray start-up is
reported apart. The machine's load average is printed: on a shared machine other jobs take cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CLIP = ROOT.parent / "shared" / "data" / "clips" / "foreman_cif_60f.mp4"


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_encode(runner, clip: Path, out: Path, settings, frames: int) -> dict:
    from gsvc_cli.chunked.encode import SourceSpec, encode_chunked
    from gsvc_cli.video import open_video

    with open_video(clip, frames=frames) as reader:
        info = reader.info
    t = time.perf_counter()
    summary = encode_chunked(SourceSpec.of(clip, 0, None, None, None), info, out, settings, runner,
                             frame_count=frames, overwrite=True)
    seconds = time.perf_counter() - t
    n = len(summary.frames)
    return {"seconds": seconds, "fps": n / seconds, "frames": n, "chunks": summary.chunks,
            "chunk_seconds": summary.chunk_seconds, "bytes": summary.file_bytes, "bpp": summary.bpp,
            "psnr": summary.mean_psnr, "sha": sha(out),
            "i_frames": sum(f.frame_type == "I" for f in summary.frames),
            "runner": summary.runner, "frame_reports": [(f.frame_type, f.bits) for f in summary.frames]}


def local(workers: int, clip: Path, out: Path, settings, frames: int) -> dict:
    from gsvc_cli.parallel.ray_runtime import RayRunner

    t = time.perf_counter()
    with RayRunner(workers) as runner:
        start = time.perf_counter() - t
        result = run_encode(runner, clip, out, settings, frames)
    result["startup_s"] = start
    result["total_s"] = time.perf_counter() - t
    return result


def cluster(nodes: int, clip: Path, out: Path, settings, frames: int) -> dict:
    """`nodes` Ray nodes of one CPU each on this machine (Ray's own multi-node test cluster),
    loopback only and with token authentication; chunks' frames go through the object store."""
    from gsvc_cli.parallel.ray_runtime import RayRunner, _local_token

    # Ray caches the token a process loaded: reuse the one this process's local runtimes used.
    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
                       "RAY_AUTH_TOKEN": _local_token(), "RAY_USAGE_STATS_ENABLED": "0",
                       "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    from ray.cluster_utils import Cluster

    t = time.perf_counter()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(nodes - 1):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    try:
        with RayRunner(nodes, address=c.address, ship_frames=True) as runner:
            start = time.perf_counter() - t
            result = run_encode(runner, clip, out, settings, frames)
        result["startup_s"] = start
        result["address"] = c.address
    finally:
        c.shutdown()
    return result


def rd_unchunked(clip: Path, out: Path, settings, frames: int) -> dict:
    import torch

    from gsvc_cli.codec.encoder.gop import encode_video
    from gsvc_cli.video import open_video
    torch.set_num_threads(1)
    t = time.perf_counter()
    with open_video(clip, frames=frames) as reader:
        summary = encode_video(reader, reader.info, out, settings, frame_count=frames, overwrite=True)
    return {"seconds": time.perf_counter() - t, "bytes": summary.file_bytes, "bpp": summary.bpp,
            "psnr": summary.mean_psnr, "i_frames": sum(f.frame_type == "I" for f in summary.frames),
            "frame_reports": [(f.frame_type, f.bits) for f in summary.frames]}


def resume_after_random_interrupt(clip: Path, tmp: Path, args, reference: str, seed: int) -> dict:
    out = tmp / "resume.gsvc"
    cmd = [sys.executable, "-m", "gsvc_cli", "encode", str(clip), "-o", str(out),
           "--frames", str(args.frames), "--gop", str(args.gop), "--preset", args.preset,
           "--bpp", str(args.bpp), "-q", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parts = tmp / ".resume.gsvc.parts"
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    while not parts.exists() and proc.poll() is None:  # the plan is written: Ray is up
        time.sleep(0.1)
    delay = random.Random(seed).uniform(0.0, args.expected_encode_s * 0.8)
    time.sleep(delay)
    interrupted = proc.poll() is None
    if interrupted:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    left = sorted(p.name for p in tmp.iterdir() if p.name.startswith(".resume") or p.name == "resume.gsvc")
    kept = len(list(parts.glob("chunk-*.part"))) if parts.exists() else 0
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    return {"delay_s": round(delay, 1), "interrupted": interrupted, "exit": proc.returncode,
            "stderr": err.strip(),
            "left_after_interrupt": left, "chunks_kept": kept, "resume_exit": done.returncode,
            "identical": done.returncode == 0 and sha(out) == reference}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", nargs="?", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--gop", type=int, default=4)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--bpp", type=float, default=0.4)
    ap.add_argument("--skip", default="")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    from gsvc_cli.codec.encoder.gop import EncoderSettings
    from gsvc_cli.codec.encoder.rate_control import RateTarget

    settings = EncoderSettings(RateTarget(bpp=args.bpp), args.preset, args.gop)
    results: dict = {"clip": str(args.clip), "frames": args.frames, "gop": args.gop, "preset": args.preset,
                     "bpp": args.bpp, "cpus": os.cpu_count(), "load_before": load()}
    with tempfile.TemporaryDirectory(prefix="gsvc-scaling-") as tmp_name:
        tmp = Path(tmp_name)
        for w in (1, 2):
            r = local(w, args.clip, tmp / f"w{w}.gsvc", settings, args.frames)
            results[f"workers_{w}"] = r
            print(f"{w} local worker(s): {r['fps']:.3f} fps ({r['seconds']:.1f} s for {r['frames']} frames, "
                  f"{r['chunks']} chunks; Ray start-up {r['startup_s']:.1f} s), bpp {r['bpp']:.4f}, "
                  f"PSNR {r['psnr']:.2f} dB, sha {r['sha']}, load {load()}", flush=True)
        w1, w2 = results["workers_1"], results["workers_2"]
        print(f"speed-up 2 vs 1 worker: {w2['fps'] / w1['fps']:.2f}x; "
              f"identical bytes: {w1['sha'] == w2['sha']}")
        c2 = w2["chunk_seconds"]
        c1 = w1["chunk_seconds"]
        print(f"mean seconds per chunk inside the workers: 1 worker {sum(c1) / len(c1):.1f}, "
              f"2 workers {sum(c2) / len(c2):.1f} (equal when each worker has a core to itself)")
        cs = w1["chunk_seconds"]
        per_frame = sum(cs) / w1["frames"]
        print(f"per-chunk encode seconds (1 thread): mean {sum(cs) / len(cs):.1f}, min {min(cs):.1f}, "
              f"max {max(cs):.1f}; {per_frame:.2f} s/frame")
        if "cluster" not in skip:
            r = cluster(2, args.clip, tmp / "cluster.gsvc", settings, args.frames)
            results["cluster_2_nodes"] = r
            print(f"simulated cluster, 2 nodes x 1 CPU (frames shipped through the object store): "
                  f"{r['fps']:.3f} fps, start-up {r['startup_s']:.1f} s, "
                  f"identical bytes: {r['sha'] == w1['sha']}",
                  flush=True)
        # Projection: 16 nodes like this one (2 cores, 2 workers each) on a long video, chunks as
        # measured (1 thread each), scheduling and shipping overhead as the 2-worker run showed.
        efficiency = (w2["fps"] / w1["fps"]) / 2
        projected = 16 * 2 * (1 / per_frame) * efficiency
        results["projection_16_nodes_fps"] = projected
        print(f"projected 16 nodes x 2 workers: {projected:.2f} fps "
              f"(= 32 workers x {1 / per_frame:.3f} frames/s per worker x efficiency {efficiency:.2f})")
        if "rd" not in skip:
            r = rd_unchunked(args.clip, tmp / "plain.gsvc", settings, args.frames)
            results["unchunked"] = r
            i_bits = [b for t, b in w1["frame_reports"] if t == "I"]
            p_bits = [b for t, b in w1["frame_reports"] if t == "P"] or [0]
            total = sum(b for _, b in w1["frame_reports"])
            extra = (sum(i_bits) / len(i_bits) - sum(p_bits) / len(p_bits)) / total * 100
            print(f"unchunked encode, same settings: {r['bytes']} bytes, bpp {r['bpp']:.4f}, "
                  f"PSNR {r['psnr']:.2f} dB, "
                  f"{r['i_frames']} I-frames; chunked: {w1['bytes']} bytes, PSNR {w1['psnr']:.2f} dB, "
                  f"{w1['i_frames']} I-frames; one extra I-frame in place of a P-frame costs "
                  f"{extra:.1f}% of this file's bits", flush=True)
            results["extra_i_frame_pct_bits"] = extra
        if "resume" not in skip:
            expected = w2["seconds"]
            args.expected_encode_s = expected
            r = resume_after_random_interrupt(args.clip, tmp, args, w1["sha"], args.seed)
            results["resume"] = r
            print(f"resume after SIGTERM at {r['delay_s']} s (seed {args.seed}): "
                  f"interrupted {r['interrupted']}, "
                  f"exit {r['exit']}, left {r['left_after_interrupt']}, {r['chunks_kept']} chunks kept; "
                  f"resumed bytes identical: {r['identical']}", flush=True)
    results["load_after"] = load()
    print(f"load average before/after: {results['load_before']} / {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()

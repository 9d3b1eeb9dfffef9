"""Decode speed at 1080p, stage by stage: read + entropy decode, dequantise, render, 4:2:0 codes,
through the decoder's own torch-free path (numpy integers, the C library of the CPU kernels).

Fitting a real 1080p clip takes minutes per frame on this machine, so by default the file is made
(torch only there) from splat sets shaped like a fitted frame's (positions uniform, sigma 2..12 px,
random shear, colours small) and coded through the real quantiser, frame coder and container: an
I-frame, then P-frames in which 10% of the splats move. Everything the decoder does is real; only
the splats are synthetic. `--file` times an existing encode instead (fitted splats).

    python bench/decode.py [--splats 10000] [--frames 6] [--repeats 3] [--threads N]
    python bench/decode.py --frames 60 --write syn60.gsvc   # only write the file (for `gsvc decode`)
    python bench/decode.py --file street54.gsvc --repeats 1  # stages of an existing (real) encode
"""

from __future__ import annotations

import os

# As gsvc_cli/__init__.py does, but before torch loads here: spinning OpenMP threads wreck timings
# on a shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from gsvc_cli.codec.bitstream.container import FileHeader, GsvcReader, GsvcWriter  # noqa: E402
from gsvc_cli.codec.bitstream.dequant import dequantise_values  # noqa: E402
from gsvc_cli.codec.bitstream.frame_coding import decode_values, encode_inter_frame, encode_intra_frame  # noqa: E402
from gsvc_cli.codec.decoder import render_image, video_info  # noqa: E402
from gsvc_cli.render.capi import default_threads  # noqa: E402
from gsvc_cli.video import Frame, VideoInfo  # noqa: E402

WIDTH, HEIGHT = 1920, 1080


def make_file(path: Path, n: int, frames: int) -> None:
    import torch  # only here: decoding never imports it, and neither should the timed part

    from gsvc_cli.codec.bitstream.quantise import QuantisedSplats, QuantSteps, quantise
    from gsvc_cli.codec.splats import Splats

    g = torch.Generator().manual_seed(0)
    means = torch.rand(n, 2, generator=g) * torch.tensor([WIDTH, HEIGHT])
    sigma = 2 + 10 * torch.rand(n, 1, generator=g)
    chol = torch.cat([sigma, torch.randn(n, 1, generator=g), sigma], 1)
    colors = torch.rand(n, 3, generator=g) * 0.3
    steps = QuantSteps.default()
    header = FileHeader(width=WIDTH, height=HEIGHT, fps_num=25, fps_den=1, params={"pix_fmt": "yuv420p"})
    with GsvcWriter(path, header, overwrite=True) as writer:
        q = quantise(Splats(means, chol, colors), steps)
        coded = encode_intra_frame(q, steps)
        q = q.select(coded.order)
        writer.write_frame("I", len(q), coded.payload)
        for _ in range(1, frames):
            moved = q.means.clone()
            moved[: n // 10] += 3
            cur = QuantisedSplats(moved, q.chol.clone(), q.colors.clone())
            coded = encode_inter_frame(cur, q, torch.arange(n))
            q = cur.select(coded.order)
            writer.write_frame("P", len(q), coded.payload)


def measure(path: Path, repeats: int) -> tuple[dict[str, tuple[float, float]], VideoInfo, int]:
    """Mean (wall, CPU) ms per frame of each stage, the decoded video's info and the mean splat
    count. CPU is the process's (all threads): on a shared machine it moves less than wall."""
    keys = ("read + entropy decode", "dequantise", "render", "to 4:2:0 codes")
    wall = dict.fromkeys(keys, 0.0)
    cpu = dict.fromkeys(keys, 0.0)
    count = 0
    splats = 0
    with GsvcReader(path) as reader:
        info = video_info(reader.header)
        for _ in range(repeats):
            prev, steps = None, None
            for k in range(len(reader)):
                marks = [(time.perf_counter(), time.process_time())]
                frame = decode_values(reader.read_frame(k).payload, prev)
                prev, steps = frame.values, frame.steps or steps
                marks.append((time.perf_counter(), time.process_time()))
                arrays = dequantise_values(frame.values, steps)
                marks.append((time.perf_counter(), time.process_time()))
                image = render_image(*arrays, info.height, info.width)
                marks.append((time.perf_counter(), time.process_time()))
                Frame.from_yuv444_float(image, info)
                marks.append((time.perf_counter(), time.process_time()))
                for key, before, after in zip(keys, marks[:-1], marks[1:], strict=True):
                    wall[key] += after[0] - before[0]
                    cpu[key] += after[1] - before[1]
                count += 1
                splats += len(frame.values)
    return {key: (1000 * wall[key] / count, 1000 * cpu[key] / count) for key in keys}, info, splats // count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splats", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="kernel threads (default: $OMP_NUM_THREADS, else the CPUs this process may use)")
    parser.add_argument("--write", type=Path, default=None, help="only write the synthetic file here")
    parser.add_argument("--file", type=Path, default=None,
                        help="time an existing .gsvc instead of a synthetic one (--splats, --frames unused)")
    args = parser.parse_args()
    if args.write is not None:
        make_file(args.write, args.splats, args.frames)
        return
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by gsvc_cli.render.capi at each call
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "bench.gsvc"
            make_file(path, args.splats, args.frames)
        empty = np.zeros((0, 2), np.float32), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
        render_image(*empty, 16, 16)  # build/load the kernels outside the timing
        with GsvcReader(path) as reader:
            frames = len(reader) * args.repeats
        load = os.getloadavg()[0]
        cpu0 = time.process_time()
        stages, info, splats = measure(path, args.repeats)
        cpu = time.process_time() - cpu0
    print(f"{path.name if args.file else 'synthetic'}: {info.width}x{info.height}, {splats} splats per frame "
          f"(mean), {frames} frames decoded, kernel threads {default_threads()}, "
          f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    for key, (wall_ms, cpu_ms) in stages.items():
        print(f"  {key:22s} {wall_ms:7.1f} ms/frame wall, {cpu_ms:7.1f} CPU")
    total = sum(wall_ms for wall_ms, _ in stages.values())
    print(f"  {'total':22s} {total:7.1f} ms/frame -> {1000 / total:.1f} fps (wall); "
          f"CPU {1000 * cpu / frames:.1f} ms/frame")


if __name__ == "__main__":
    main()

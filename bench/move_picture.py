"""How long an M-frame's move takes at 1080p: the plain move against the overlapped one (kind 6).

Usage: PYTHONPATH=. python bench/move_picture.py [--reps 20] [--cells 8 16] [--mode both]
       [--threads N] [--clip PATH] [--sharp]

Not a test: prints figures. The picture is a real 1920x1080 frame (clips_large/street_1080p_54f.mp4,
else a CIF clip of clips/ upscaled by pixel repetition) as the decoder holds it: YUV 4:4:4 float32,
code value / 255, chroma repeated 2x2. The field is quarter-pixel, as the encoder's are: a smooth
zoom and pan (neighbouring vectors mostly equal, changing by a quarter pixel every few cells), a
moving block, and a quarter pixel of noise in a quarter of the cells, so that about half of the
edges between cells separate different vectors (48% at cell 8, 54% at 16), as in the field the
encoder's search (picture_motion + quarter_refine, Q 30) finds between frames 9 and 10 of the
street clip (45% and 56%): most cells then have a neighbour to blend with. Each move goes through
gsvc_cli.render.capi.move_picture (the decoder's C kernel), REPS times after one warm-up call;
prints ms per call and, with --mode both, the overlapped/plain ratio. --mode plain or overlapped
times one of them alone (to compare two kernels as whole commands). --sharp reads through the
8-tap filter (format 9.0) instead of the cubic.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from gsvc_cli.codec.moved_picture import grid_shape
from gsvc_cli.render import capi
from gsvc_cli.video import open_video

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WIDTH, HEIGHT = 1920, 1080


def default_clip() -> Path:
    for root in (Path("/work/shared/data"), DATA):
        for name in ("clips_large/street_1080p_54f.mp4", "clips/foreman_cif_60f.mp4"):
            if (root / name).is_file():
                return root / name
    raise SystemExit("no clip found: give --clip")


def picture_of(clip: Path) -> np.ndarray:
    """[3, 1080, 1920] float32 YUV 4:4:4 of the clip's 10th frame (or its last)."""
    with open_video(clip, frames=10) as reader:
        frame = list(reader)[-1]
    y = frame.y.astype(np.float32)
    u, v = (np.repeat(np.repeat(p, 2, axis=0), 2, axis=1)[:y.shape[0], :y.shape[1]].astype(np.float32)
            for p in (frame.u, frame.v))
    yuv = np.stack([y, u, v]) / np.float32(255)
    if yuv.shape[1:] != (HEIGHT, WIDTH):  # a small clip: repeat pixels up to at least 1080p, then cut
        fy, fx = -(-HEIGHT // yuv.shape[1]), -(-WIDTH // yuv.shape[2])
        yuv = np.repeat(np.repeat(yuv, fy, axis=1), fx, axis=2)[:, :HEIGHT, :WIDTH]
    return np.ascontiguousarray(yuv, dtype=np.float32)


def field_of(cell: int, seed: int = 1) -> np.ndarray:
    """[gh, gw, 2] int64 quarter-pixel vectors: a zoom of 0.4% about the centre plus a pan of
    (1.5, -0.75) px, a 256x192-pixel block moving (-6.25, 3.5) px, and 25% of the cells off by a
    quarter pixel in one component."""
    gh, gw = grid_shape(WIDTH, HEIGHT, cell)
    rng = np.random.default_rng(seed)
    yc, xc = (np.mgrid[0:gh, 0:gw] + 0.5) * cell
    vx = 1.5 + 0.004 * (xc - WIDTH / 2)
    vy = -0.75 + 0.004 * (yc - HEIGHT / 2)
    block = (xc > 1200) & (xc < 1456) & (yc > 400) & (yc < 592)
    vx[block], vy[block] = -6.25, 3.5
    vectors = np.rint(4 * np.stack([vx, vy], axis=-1)).astype(np.int64)
    noisy = rng.random((gh, gw)) < 0.25
    which = rng.integers(0, 2, size=(gh, gw))
    step = rng.choice([-1, 1], size=(gh, gw))
    vectors[noisy, which[noisy]] += step[noisy]
    return vectors


def differing_edges(vectors: np.ndarray) -> float:
    """The share of edges between horizontally or vertically adjacent cells whose vectors differ."""
    across = (vectors[:, 1:] != vectors[:, :-1]).any(-1)
    down = (vectors[1:] != vectors[:-1]).any(-1)
    return (across.sum() + down.sum()) / (across.size + down.size)


def time_move(picture: np.ndarray, vectors: np.ndarray, cell: int, overlapped: bool, reps: int,
              threads: int, sharp: bool = False) -> float:
    """Milliseconds per call (the median of REPS timed calls after one warm-up)."""
    capi.move_picture(picture, vectors, cell, 4, threads=threads, overlapped=overlapped, sharp=sharp)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        capi.move_picture(picture, vectors, cell, 4, threads=threads, overlapped=overlapped, sharp=sharp)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--cells", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--mode", choices=("both", "plain", "overlapped"), default="both")
    parser.add_argument("--threads", type=int, default=None, help="default: $OMP_NUM_THREADS, else the CPUs")
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--sharp", action="store_true", help="the 8-tap filter instead of the cubic")
    args = parser.parse_args()
    threads = args.threads or capi.default_threads()
    clip = args.clip or default_clip()
    picture = picture_of(clip)
    print(f"{clip.name} -> {picture.shape[2]}x{picture.shape[1]}x{picture.shape[0]} float32, "
          f"{threads} threads, simd {capi.simd_name()}, {'8-tap' if args.sharp else 'cubic'}, "
          f"{args.reps} reps (median ms per call)")
    for cell in args.cells:
        vectors = field_of(cell)
        line = (f"cell {cell:2d} ({vectors.shape[1]}x{vectors.shape[0]}, "
                f"{differing_edges(vectors):.0%} of edges differ):")
        plain = overlapped = None
        if args.mode in ("both", "plain"):
            plain = time_move(picture, vectors, cell, False, args.reps, threads, args.sharp)
            line += f"  plain {plain:7.2f} ms"
        if args.mode in ("both", "overlapped"):
            overlapped = time_move(picture, vectors, cell, True, args.reps, threads, args.sharp)
            line += f"  overlapped {overlapped:7.2f} ms"
        if plain and overlapped:
            line += f"  overlapped/plain {overlapped / plain:.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()

"""The torch-free C library of the CPU kernels (gsvc_cli/render/capi.py): the same image as the
torch extension bit for bit, the same integer codes as Frame.from_yuv444_float's torch path, and a
cached, atomically written build."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from helpers import HEADS, kodak_crop, random_splats

from gsvc_cli.render import capi, capi_build, render
from gsvc_cli.video import Frame, VideoInfo, open_video
from gsvc_cli.video.frame import _codes_torch
from gsvc_cli.video.pixfmt import PIX_FMTS


@pytest.mark.parametrize(("height", "width", "n", "seed"),
                         [(16, 16, 40, 0), (37, 53, 300, 1), (64, 96, 2000, 2), (1, 1, 5, 3),
                          (130, 47, 800, 4)])
def test_render_equals_the_torch_extension_bit_for_bit(height, width, n, seed):
    means, chol, colors = random_splats(n, height, width, seed)
    expected = render(means, chol, colors, height, width, backend="cpu")
    for threads in (1, 2):
        image = capi.render_image(means.numpy(), chol.numpy(), colors.numpy(), height, width, threads=threads)
        assert np.array_equal(image, expected.numpy())
    clamped = capi.render_image(means.numpy(), chol.numpy(), colors.numpy(), height, width, clamp=True)
    assert np.array_equal(clamped, expected.clamp(0, 1).numpy())


def test_zero_splats_render_black():
    empty = np.zeros((0, 2), np.float32), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
    assert not capi.render_image(*empty, 5, 7).any()


def tie_heavy_image(height: int, width: int) -> torch.Tensor:
    """Values at exact halves of a code (and quarter steps, which average to halves), outside [0, 1]
    too: every rounding tie the conversion can meet."""
    g = torch.Generator().manual_seed(7)
    codes = torch.randint(-40, 4 * 255 + 40, (3, height, width), generator=g).float() / 4.0
    return codes / 255.0


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le"])
@pytest.mark.parametrize(("height", "width"), [(48, 64), (37, 53), (1, 1)])
def test_codes_equal_the_torch_conversion(pix_fmt, height, width):
    """Against the torch path Frame.from_yuv444_float used before (and falls back to), including
    rounding ties, values outside [0, 1] and odd sizes (replicated edges)."""
    fmt = PIX_FMTS[pix_fmt]
    image = kodak_crop(200, 100, width, height)  # real content, as RGB: any [3,H,W] floats will do
    for yuv in (image, tie_heavy_image(height, width), image * 1.7 - 0.3):
        codes = capi.yuv444_to_codes(yuv.numpy(), fmt.peak, fmt.shift_x, fmt.shift_y)
        for got, want in zip(codes, _codes_torch(yuv.clone(), fmt), strict=True):
            assert got.dtype == want.dtype and np.array_equal(got, want)


def test_real_decoded_frames_give_the_same_codes_both_ways():
    """Real pictures (a real clip's frames in 4:4:4 floats) through from_yuv444_float: C and torch
    agree (rendered pictures are checked end to end in test_codec.py)."""
    with open_video(HEADS, frames=3) as reader:
        images = [frame.to_yuv444_float() for frame in reader]
    info = VideoInfo(images[0].shape[2], images[0].shape[1], Fraction(12), "yuv420p")
    for image in images:
        from_numpy = Frame.from_yuv444_float(image.numpy(), info)
        want = _codes_torch(image.clone(), info.fmt)
        assert all(np.array_equal(a, b) for a, b in zip(from_numpy.planes, want, strict=True))


def test_the_library_is_cached_by_a_key_and_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    source = capi_build.kernel_source_dir()
    import shutil

    ext = tmp_path / "ext"
    shutil.copytree(source, ext)
    key = capi_build.library_key(ext)
    assert capi_build.library_key(ext) == key
    (ext / "cpu" / "capi.cpp").write_text((ext / "cpu" / "capi.cpp").read_text() + "\n// edited\n")
    assert capi_build.library_key(ext) != key
    monkeypatch.setenv("CXX", "g++ -DGSVC_UNUSED=1")
    assert capi_build.library_key(ext) != key


def test_a_failed_compile_is_one_clear_error(tmp_path, monkeypatch):
    import shutil

    ext = tmp_path / "ext"
    shutil.copytree(capi_build.kernel_source_dir(), ext)
    (ext / "cpu" / "capi.cpp").write_text("this is not C++\n")
    monkeypatch.setenv("GSVC_KERNEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(capi_build.KernelBuildError, match="cannot compile the render kernels"):
        capi_build.build_library(ext)
    assert not list((tmp_path / "cache").glob("*.so")) and not list((tmp_path / "cache").glob("*.tmp"))
    monkeypatch.setenv("CXX", "no-such-compiler-gsvc")
    with pytest.raises(capi_build.KernelBuildError, match="not usable"):
        capi_build.build_library(ext)


BUILD_AND_LOAD = """
import sys
from pathlib import Path
from gsvc_cli.render import capi_build
print(capi_build.build_library(Path(sys.argv[1])))
"""


def test_two_processes_building_at_once_share_one_library(tmp_path, monkeypatch):
    """A fresh cache, two processes: one compiles while the other waits on the lock; both get the
    same whole library, and no temporary file is left behind."""
    import shutil
    import subprocess
    import sys

    ext = tmp_path / "ext"
    shutil.copytree(capi_build.kernel_source_dir(), ext)
    (ext / "cpu" / "capi.cpp").write_text((ext / "cpu" / "capi.cpp").read_text() + "\n// a fresh key\n")
    monkeypatch.setenv("GSVC_KERNEL_CACHE", str(tmp_path / "cache"))
    runs = [subprocess.Popen([sys.executable, "-c", BUILD_AND_LOAD, str(ext)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    paths = {out.strip() for out, _ in outputs}
    assert len(paths) == 1
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".lock", ".so"]


@pytest.mark.parametrize("cell, height, width", [(8, 48, 64), (16, 40, 50), (32, 37, 70)])
def test_window_errors_sum_each_cell_at_each_vector(cell, height, width):
    """The block search's sums against a plain sum per cell and vector, reads clamped at the
    frame's edges (vectors reaching outside it, cells cut by the frame's right and bottom edges);
    the same with one thread and with two."""
    rng = np.random.default_rng(cell)
    image = rng.random((height, width), dtype=np.float32)
    reference = rng.random((height, width), dtype=np.float32)
    gh, gw = -(-height // cell), -(-width // cell)
    base = rng.integers(-12, 13, size=(gh, gw, 2))
    offsets = np.array([(dx, dy) for dy in (-2, 0, 2) for dx in (-2, 0, 1)], dtype=np.int64)
    got = capi.window_errors(image, reference, cell, base, offsets, threads=1)
    ys, xs = np.arange(height), np.arange(width)
    for k, (dx, dy) in enumerate(offsets):
        for cy in range(gh):
            for cx in range(gw):
                vx, vy = base[cy, cx] + (dx, dy)
                rows, cols = ys[cy * cell:(cy + 1) * cell], xs[cx * cell:(cx + 1) * cell]
                moved = reference[np.clip(rows - vy, 0, height - 1)][:, np.clip(cols - vx, 0, width - 1)]
                want = float(((image[rows][:, cols].astype(np.float64) - moved) ** 2).sum())
                assert got[k, cy, cx] == pytest.approx(want, rel=1e-5)
    assert np.array_equal(capi.window_errors(image, reference, cell, base, offsets, threads=2), got)
    with pytest.raises(ValueError):
        capi.window_errors(image, reference[:-1], cell, base, offsets)


@pytest.mark.parametrize(("cell", "height", "width", "sharp"),
                         [(8, 48, 64, False), (16, 40, 50, True), (32, 37, 70, False), (8, 21, 30, True)])
def test_quarter_errors_are_the_errors_of_the_moved_pictures(cell, height, width, sharp):
    """Each candidate field's per-cell squared errors equal those of the picture move_picture
    moves by that field (quarter pixels, the cubic or the 8-tap filter, vectors reaching past the
    frame, cells cut by its edges), summed per cell in double; one thread and two alike."""
    rng = np.random.default_rng(cell + height)
    image = rng.random((height, width), dtype=np.float32)
    reference = rng.random((height, width), dtype=np.float32)
    gh, gw = -(-height // cell), -(-width // cell)
    candidates = rng.integers(-40, 41, size=(5, gh, gw, 2))
    got = capi.quarter_errors(image, reference, cell, candidates, sharp, threads=1)
    for k in range(len(candidates)):
        moved = capi.move_picture(reference[None], candidates[k], cell, 4, sharp=sharp)[0]
        err = (image.astype(np.float64) - moved) ** 2
        for cy in range(gh):
            for cx in range(gw):
                want = err[cy * cell:(cy + 1) * cell, cx * cell:(cx + 1) * cell].sum()
                assert got[k, cy, cx] == pytest.approx(want, rel=1e-5)
    assert np.array_equal(capi.quarter_errors(image, reference, cell, candidates, sharp, threads=2), got)


@pytest.mark.parametrize(("own", "median"), [(False, False), (True, False), (False, True), (True, True)])
def test_choose_vectors_takes_the_least_cost_in_coding_order(own, median):
    """Each cell's choice against a plain loop: the least error + lambda x bits of the residual from
    the left neighbour's choice (the cell above's down the first column), the cell's zero_bits for
    a zero residual and its moving_bits on top of any other (prices per cell); with `own`, the
    predictor itself at its weighted squared error (reads clamped); with
    `median`, in raster order, a vector other than the predictor priced by its residual from the
    median of the left, upper and upper-right choices (format 12.0's coding)."""
    rng = np.random.default_rng(7 + own + 2 * median)
    cell, height, width, count = 8, 30, 44, 6
    gh, gw = -(-height // cell), -(-width // cell)
    candidates = rng.integers(-6, 7, size=(count, gh, gw, 2))
    candidates[1] = 0  # zero residuals from a zero predictor
    errors = rng.random((count, gh, gw), dtype=np.float32) * 20
    image = rng.random((height, width), dtype=np.float32)
    reference = rng.random((height, width), dtype=np.float32)
    lam, weight = 0.7, 0.75
    zero_bits = rng.uniform(0.1, 4.0, (gh, gw)).astype(np.float32)
    moving_bits = rng.uniform(0.0, 3.0, (gh, gw)).astype(np.float32)
    got = capi.choose_vectors(errors, candidates, lam, zero_bits, moving_bits,
                              (image, reference, cell, weight) if own else None, median)

    def bits(v, predictor, coded_from, row, col):
        if (v == predictor).all():
            return float(zero_bits[row, col])
        components = float(sum(1 + 2 * np.log2(1 + abs(float(c))) for c in v - coded_from))
        return components + float(moving_bits[row, col])

    want = np.zeros((gh, gw, 2), dtype=np.int64)
    order = [(row, 0) for row in range(gh)] + [(row, col) for col in range(1, gw) for row in range(gh)]
    if median:
        order = [(row, col) for row in range(gh) for col in range(gw)]
    for row, col in order:
        predictor = want[row, col - 1] if col else (want[row - 1, 0] if row else np.zeros(2, np.int64))
        coded_from = predictor
        if median and row and col:
            a, b, c = predictor, want[row - 1, col], want[row - 1, min(col + 1, gw - 1)]
            coded_from = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
        costs = [errors[k, row, col] + lam * bits(candidates[k, row, col], predictor, coded_from, row, col)
                 for k in range(count)]
        best = candidates[int(np.argmin(costs)), row, col]
        if own:
            ys = np.arange(row * cell, min(height, row * cell + cell))
            xs = np.arange(col * cell, min(width, col * cell + cell))
            moved = reference[np.clip(ys - predictor[1], 0, height - 1)]
            moved = moved[:, np.clip(xs - predictor[0], 0, width - 1)]
            own_cost = weight * float(((image[ys][:, xs] - moved) ** 2).sum()) + lam * zero_bits[row, col]
            if own_cost < min(costs):
                best = predictor
        want[row, col] = best
    assert np.array_equal(got, want)
    if own:  # the predictor's own vector won somewhere
        assert not np.array_equal(got, capi.choose_vectors(errors, candidates, lam, zero_bits, moving_bits,
                                                           None, median))
    if median:  # the pricing changed some choices
        assert not np.array_equal(got, capi.choose_vectors(errors, candidates, lam, zero_bits, moving_bits,
                                                           (image, reference, cell, weight) if own else None))
    with pytest.raises(ValueError):
        capi.choose_vectors(errors[:, :-1], candidates, lam, zero_bits, moving_bits)
    assert np.array_equal(capi.choose_vectors(errors, candidates, lam, 1.5, 0.25, None, median),
                          capi.choose_vectors(errors, candidates, lam, np.full((gh, gw), 1.5),
                                              np.full((gh, gw), 0.25), None, median))  # a number: every cell

"""The CPU kernels through their C ABI (ext/cpu/capi.cpp), on numpy arrays: rendering, the
YUV 4:4:4 float -> integer codes conversion, the entropy tables' decay sequence and M-frames' moved
pictures, for callers that must not import torch (the decoder); and the encoder's block search sums.

The render is the torch extension's forward, compiled from the same sources with the same flags, so
images are equal bit for bit (tests/test_render_capi.py checks it). Thread counts default to
$OMP_NUM_THREADS, else the CPUs this process may run on; results never depend on them.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading

import numpy as np

from gsvc_cli.render.capi_build import KernelBuildError, build_library

CAPI_VERSION = 14
_lock = threading.Lock()

_f32p = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
_u8p = np.ctypeslib.ndpointer(np.uint8, flags="C_CONTIGUOUS")
_u16p = np.ctypeslib.ndpointer(np.uint16, flags="C_CONTIGUOUS")
_i64p = np.ctypeslib.ndpointer(np.int64, flags="C_CONTIGUOUS")
_i32, _i64, _int = ctypes.c_int32, ctypes.c_int64, ctypes.c_int


def default_threads() -> int:
    """$OMP_NUM_THREADS when set, else the number of CPUs this process may run on."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, len(os.sched_getaffinity(0)))


@functools.cache
def _library_cached() -> ctypes.CDLL:
    path = build_library()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        raise KernelBuildError(f"cannot load the render kernels {path}: {error}") from error
    lib.gsvc_capi_version.restype = _int
    if lib.gsvc_capi_version() != CAPI_VERSION:
        raise KernelBuildError(f"{path}: C ABI version {lib.gsvc_capi_version()}, expected {CAPI_VERSION}")
    lib.gsvc_capi_simd.restype = ctypes.c_char_p
    lib.gsvc_render_forward.restype = _int
    lib.gsvc_render_forward.argtypes = [_f32p, _f32p, _f32p, _i64, _i32, _i32, _f32p, _int, _int]
    lib.gsvc_clamp01.restype = None
    lib.gsvc_clamp01.argtypes = [_f32p, _i64, _int]
    for name, codes in (("gsvc_yuv444_to_codes8", _u8p), ("gsvc_yuv444_to_codes16", _u16p)):
        getattr(lib, name).restype = _int
        getattr(lib, name).argtypes = [_f32p, _i32, _i32, ctypes.c_float, _int, _int, codes, codes, codes,
                                       _int]
    lib.gsvc_decay_sequence.restype = _i64
    lib.gsvc_decay_sequence.argtypes = [_i64, _i64, _i64p]
    lib.gsvc_move_picture.restype = _int
    lib.gsvc_move_picture.argtypes = [_f32p, _i32, _i32, _i32, _i64p, _i32, _i32, _i32, _i32, _i32, _f32p,
                                      _int]
    lib.gsvc_move_picture_overlapped.restype = _int
    lib.gsvc_move_picture_overlapped.argtypes = lib.gsvc_move_picture.argtypes
    lib.gsvc_window_sums.restype = _int
    lib.gsvc_window_sums.argtypes = [_f32p, _f32p, _i32, _i32, _i32, _f32p, _i32, _i32, _i32, _i32,
                                     np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS"), _int]
    lib.gsvc_choose_vectors.restype = _int
    lib.gsvc_choose_vectors.argtypes = [_f32p, _i64p, _i32, _i32, _i32, ctypes.c_float, _f32p, _f32p,
                                        ctypes.c_void_p, ctypes.c_void_p, _i32, _i32, _i32,
                                        ctypes.c_float, _i32, _i64p]
    lib.gsvc_quarter_errors.restype = _int
    lib.gsvc_quarter_errors.argtypes = [_f32p, _f32p, _i32, _i32, _i64p, _i32, _i32, _i32, _i32, _i32, _f32p,
                                        _int]
    lib.gsvc_window_errors.restype = _int
    lib.gsvc_window_errors.argtypes = [_f32p, _f32p, _i32, _i32, _i64p, _i32, _i32, _i32, _i64p, _i32, _f32p,
                                       _int]
    lib.gsvc_median_field.restype = _int
    lib.gsvc_median_field.argtypes = [_i64p, _u8p, _i32, _i32, _i64p]
    lib.gsvc_fit_error_sums.restype = _int
    lib.gsvc_fit_error_sums.argtypes = [_f32p, _f32p, _i32, _i32, _i32,
                                        np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS"), _int]
    lib.gsvc_fit_error_gradient.restype = _int
    lib.gsvc_fit_error_gradient.argtypes = [_f32p, _f32p, _i32, _i64, _f32p, _f32p, _int]
    return lib


def library() -> ctypes.CDLL:
    """The loaded C library, compiled on first use. Raises KernelBuildError when that fails."""
    with _lock:
        return _library_cached()


def simd_name() -> str:
    """The SIMD path compiled in ("avx512", "avx2" or "scalar")."""
    return library().gsvc_capi_simd().decode()


def _check(status: int, what: str) -> None:
    if status == 2:
        raise MemoryError(f"{what}: out of memory")
    if status != 0:
        raise ValueError(f"{what}: arguments refused by the kernel")


def render_image(means: np.ndarray, chol: np.ndarray, colors: np.ndarray, height: int, width: int, *,
                 clamp: bool = False, threads: int | None = None) -> np.ndarray:
    """N splats -> image [3, height, width] float32 (as `gsvc_cli.render.render` with the cpu backend).

    means [N,2] pixels, chol [N,3] (l1, l2, l3), colors [N,3], all finite float32 (converted and made
    contiguous if needed). clamp: every value clamped to [0, 1] (the decoded picture), as it is stored.
    """
    means, chol, colors = (np.ascontiguousarray(a, dtype=np.float32) for a in (means, chol, colors))
    n = means.shape[0]
    if means.shape != (n, 2) or chol.shape != (n, 3) or colors.shape != (n, 3):
        raise ValueError(f"render: inconsistent shapes {means.shape}, {chol.shape}, {colors.shape}")
    if height < 1 or width < 1:
        raise ValueError(f"render: image size must be positive, got {height}x{width}")
    threads = threads or default_threads()
    lib = library()
    image = np.empty((3, height, width), dtype=np.float32)
    _check(lib.gsvc_render_forward(means, chol, colors, n, height, width, image, threads, int(clamp)),
           "render")
    return image


def yuv444_to_codes(yuv: np.ndarray, peak: int, shift_x: int, shift_y: int,
                    threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[3, H, W] float32 YUV (code value / peak) -> Y [H, W], U and V [ceil(H/2^sy), ceil(W/2^sx)]
    integer codes (uint8 for peak < 256, else uint16): clamped to [0, 1], times peak, chroma
    box-averaged (edges replicated), rounded half to even. shift_x, shift_y in {0, 1}."""
    yuv = np.ascontiguousarray(yuv, dtype=np.float32)
    if yuv.ndim != 3 or yuv.shape[0] != 3:
        raise ValueError(f"yuv444_to_codes: expected [3, H, W], got {list(yuv.shape)}")
    if shift_x not in (0, 1) or shift_y not in (0, 1) or not 0 < peak < 65536:
        raise ValueError(f"yuv444_to_codes: unsupported shifts {shift_x}, {shift_y} or peak {peak}")
    _, h, w = yuv.shape
    dtype = np.uint8 if peak < 256 else np.uint16
    y = np.empty((h, w), dtype=dtype)
    ch, cw = -(-h // (1 << shift_y)), -(-w // (1 << shift_x))
    u, v = np.empty((ch, cw), dtype=dtype), np.empty((ch, cw), dtype=dtype)
    lib = library()
    convert = lib.gsvc_yuv444_to_codes8 if dtype == np.uint8 else lib.gsvc_yuv444_to_codes16
    _check(convert(yuv, h, w, float(peak), shift_x, shift_y, y, u, v, threads or default_threads()),
           "yuv444_to_codes")
    return y, u, v


def decay_sequence(r: int, length: int) -> np.ndarray:
    """g[0..length) int64 with g[0] = 2**32, g[d+1] = (g[d] * r) >> 16 (r in [0, 65536]): the
    LAPLACE/SKEW weights of the entropy coder (gsvc_cli.codec.bitstream.decay), exact integers,
    without a Python loop over the terms."""
    if not 0 <= r <= 1 << 16 or length < 0:
        raise ValueError(f"decay_sequence: r {r} outside [0, 65536] or negative length {length}")
    out = np.empty(length, dtype=np.int64)
    if library().gsvc_decay_sequence(r, length, out) < 0:
        raise ValueError("decay_sequence: arguments refused by the kernel")
    return out


def move_picture(picture: np.ndarray, vectors: np.ndarray, cell: int, per_pixel: int,
                 threads: int | None = None, overlapped: bool = False, sharp: bool = False) -> np.ndarray:
    """picture [C, H, W] float32 moved by an M-frame's field (vectors [gh, gw, 2] int64 in
    1/per_pixel pixels, per_pixel 1 or 4; overlapped: kind 6's blend at cell borders; sharp: the
    8-tap filter for quarter pixels): the same
    bits as gsvc_cli.codec.moved_picture's numpy path (FORMAT.md "M-frame"); the caller has
    checked that the field covers the frame."""
    picture = np.ascontiguousarray(picture, dtype=np.float32)
    vectors = np.ascontiguousarray(vectors, dtype=np.int64)
    channels, height, width = picture.shape
    gh, gw = vectors.shape[:2]
    out = np.empty_like(picture)
    threads = threads or default_threads()
    kernel = library().gsvc_move_picture_overlapped if overlapped else library().gsvc_move_picture
    _check(kernel(picture, channels, height, width, vectors, gh, gw, cell, per_pixel, int(sharp), out,
                  threads), "move_picture")
    return out


def window_errors(image: np.ndarray, reference: np.ndarray, cell: int, base: np.ndarray, offsets: np.ndarray,
                  threads: int | None = None) -> np.ndarray:
    """Squared error sums [K, gh, gw] float32 of each cell of `cell` pixels of image [H, W] against
    reference [H, W] read at p - (base[cy, cx] + offsets[k]) (x, y whole pixels; base [gh, gw, 2],
    offsets [K, 2] int64), over the cell's pixels inside the frame, reads clamped to the frame."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    base = np.ascontiguousarray(base, dtype=np.int64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64).reshape(-1, 2)
    height, width = image.shape
    gh, gw = base.shape[:2]
    if reference.shape != image.shape or base.shape != (gh, gw, 2):
        raise ValueError(f"window_errors: shapes {image.shape}, {reference.shape}, {base.shape} do not match")
    out = np.empty((len(offsets), gh, gw), dtype=np.float32)
    _check(library().gsvc_window_errors(image, reference, height, width, base, gh, gw, cell, offsets,
                                        len(offsets), out, threads or default_threads()), "window_errors")
    return out


def quarter_errors(image: np.ndarray, reference: np.ndarray, cell: int, candidates: np.ndarray, sharp: bool,
                   threads: int | None = None) -> np.ndarray:
    """Squared error sums [K, gh, gw] float32 of each cell of `cell` pixels of image [H, W] against
    reference [H, W] moved by each field candidates[k] ([K, gh, gw, 2] int64, quarter pixels; the
    cubic, or with `sharp` the 8-tap filter), as move_picture would move it, over the cell's pixels
    inside the frame."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    height, width = image.shape
    count, gh, gw = candidates.shape[:3]
    if reference.shape != image.shape or candidates.shape != (count, gh, gw, 2):
        raise ValueError(f"quarter_errors: shapes {image.shape}, {reference.shape}, {candidates.shape} "
                         "do not match")
    out = np.empty((count, gh, gw), dtype=np.float32)
    _check(library().gsvc_quarter_errors(image, reference, height, width, candidates, count, gh, gw, cell,
                                         int(sharp), out, threads or default_threads()), "quarter_errors")
    return out


def choose_vectors(errors: np.ndarray, candidates: np.ndarray, lam: float, zero_bits: float | np.ndarray,
                   moving_bits: float | np.ndarray,
                   own: tuple[np.ndarray, np.ndarray, int, float] | None = None,
                   median: bool = False) -> np.ndarray:
    """Per cell, the candidate (candidates [K, gh, gw, 2] int64, errors [K, gh, gw] float32) of least
    error + lam x bits of its residual from its predictor (the left neighbour's choice; down the
    first column the one above), chosen cell after cell: [gh, gw, 2] int64. Bits: zero_bits for
    (0, 0), else moving_bits + per component 1 + 2 log2(1 + |r|) (each a number, or one per cell
    [gh, gw]). own (image, reference, cell,
    weight; luma [H, W], whole pixels): each cell also tries its predictor itself at weight x its
    squared error. median: a vector other than the predictor is priced by its residual from the
    median of the left, upper and upper-right choices (format 12.0's flagged fields), cells chosen
    in raster order. Float32 costs; the first of equal costs wins."""
    errors = np.ascontiguousarray(errors, dtype=np.float32)
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    count, gh, gw = errors.shape
    if candidates.shape != (count, gh, gw, 2):
        raise ValueError(f"choose_vectors: shapes {errors.shape} and {candidates.shape} do not match")
    chosen = np.empty((gh, gw, 2), dtype=np.int64)
    zero, moving = (np.ascontiguousarray(np.broadcast_to(np.asarray(b, dtype=np.float32), (gh, gw)))
                    for b in (zero_bits, moving_bits))
    image = reference = None
    height = width = cell = 0
    weight = 0.0
    if own is not None:
        image, reference = (np.ascontiguousarray(a, dtype=np.float32) for a in own[:2])
        if reference.shape != image.shape:
            raise ValueError(f"choose_vectors: shapes {image.shape} and {reference.shape} do not match")
        (height, width), cell, weight = image.shape, own[2], own[3]
    _check(library().gsvc_choose_vectors(
        errors, candidates, count, gh, gw, lam, zero, moving,
        None if image is None else image.ctypes.data, None if reference is None else reference.ctypes.data,
        height, width, cell, weight, int(median), chosen), "choose_vectors")
    return chosen


def median_field(residuals: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """A flagged field's vectors [gh, gw, 2] int64 from its median-predicted residuals [gh, gw, 2]
    int64 (zero where a cell does not move) and its moving flags [gh, gw] (codec.bitstream.
    motion_vectors.undo_median_residuals, which is the definition)."""
    residuals = np.ascontiguousarray(residuals, dtype=np.int64)
    moving = np.ascontiguousarray(moving, dtype=np.uint8)
    gh, gw = moving.shape
    if residuals.shape != (gh, gw, 2):
        raise ValueError(f"median_field: shapes {residuals.shape} and {moving.shape} do not match")
    out = np.empty((gh, gw, 2), dtype=np.int64)
    _check(library().gsvc_median_field(residuals, moving, gh, gw, out), "median_field")
    return out


def window_sums(moved: np.ndarray, image: np.ndarray, weights: np.ndarray, cell: int, reach: int,
                threads: int | None = None) -> np.ndarray:
    """[gh, gw] float64: per cell of `cell` pixels, the sum over the cell and `reach` pixels around
    it (inside the frame) of the channel-weighted squared error between moved and image
    ([C, H, W] float32; weights [C])."""
    moved = np.ascontiguousarray(moved, dtype=np.float32)
    image = np.ascontiguousarray(image, dtype=np.float32)
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    channels, height, width = image.shape
    if moved.shape != image.shape or weights.shape != (channels,):
        raise ValueError(f"window_sums: shapes {moved.shape}, {image.shape}, {weights.shape} do not match")
    gh, gw = -(-height // cell), -(-width // cell)
    out = np.empty((gh, gw), dtype=np.float64)
    _check(library().gsvc_window_sums(moved, image, channels, height, width, weights, cell, reach, gh, gw,
                                      out, threads or default_threads()), "window_sums")
    return out


def fit_error_sums(a: np.ndarray, b: np.ndarray, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per channel of [C, H, W] float32 a and b: the sum of (a - b)^2 and the sum with a clamped
    to [0, 1] ([C] float64 each), in one pass (the fitting loop's loss and its PSNR)."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"fit_error_sums: shapes {a.shape} and {b.shape} must be the same [C, H, W]")
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    channels, height, width = a.shape
    sums = np.empty(2 * channels, dtype=np.float64)
    _check(library().gsvc_fit_error_sums(a, b, channels, height, width, sums, threads or default_threads()),
           "fit_error_sums")
    return sums[:channels], sums[channels:]


def fit_error_gradient(a: np.ndarray, b: np.ndarray, scales: np.ndarray, out: np.ndarray,
                       threads: int | None = None) -> None:
    """out = (a - b) x scales[c] per channel c of [C, H, W] float32 arrays (out preallocated,
    contiguous): the fitting loss's gradient, one pass."""
    if a.shape != b.shape or out.shape != a.shape or a.ndim != 3 or scales.shape != (a.shape[0],):
        raise ValueError(f"fit_error_gradient: shapes {a.shape}, {b.shape}, {scales.shape}, {out.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    scales = np.ascontiguousarray(scales, dtype=np.float32)
    channels = a.shape[0]
    _check(library().gsvc_fit_error_gradient(a, b, channels, a[0].size, scales, out,
                                             threads or default_threads()), "fit_error_gradient")

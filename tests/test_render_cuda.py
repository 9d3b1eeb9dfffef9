"""The CUDA backend (ext/cuda): it compiles, its binding compiles, and on a GPU it renders what the
torch reference renders, gradients included.

Without a GPU (or with a CPU-only torch) the kernels cannot run: the GPU test skips saying which of
the two is missing, and the compile checks still keep the CUDA sources and their binding honest. The
shared maths in ext/include/gsvc_splat.h is exercised by the CPU tests either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch
from helpers import random_splats

EXT = Path(__file__).resolve().parents[1] / "ext"


def _no_gpu_reason() -> str | None:
    """Why the CUDA kernels cannot run here, or None when they can."""
    if torch.version.cuda is None:
        return f"no GPU to run the CUDA kernels on: this torch ({torch.__version__}) is a CPU-only build"
    if not torch.cuda.is_available():
        return (f"no GPU to run the CUDA kernels on: torch {torch.__version__} has CUDA {torch.version.cuda} "
                "but sees no CUDA device")
    return None


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found on PATH: CUDA kernels not compiled")
def test_cuda_kernels_compile_with_nvcc(tmp_path):
    obj = tmp_path / "render_cuda.o"
    cmd = ["nvcc", "-c", "-std=c++17", "-O1", "-I", str(EXT / "include"), "-I", str(EXT / "cuda"),
           str(EXT / "cuda" / "render_cuda.cu"), "-o", str(obj)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert obj.stat().st_size > 0
    # The kernels really are in the object (not an empty translation unit).
    symbols = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True).stdout
    for name in ("gsvc::cuda::forward", "gsvc::cuda::backward", "gsvc::cuda::bin_tiles"):
        assert name in symbols, name


def _cuda_include_dir() -> Path | None:
    from torch.utils.cpp_extension import CUDA_HOME

    for home in (CUDA_HOME, os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if home and (Path(home) / "include" / "cuda_runtime.h").is_file():
            return Path(home) / "include"
    return None


@pytest.mark.skipif(_cuda_include_dir() is None, reason="CUDA headers (cuda_runtime.h) not found")
def test_cuda_binding_compiles_against_torch(tmp_path):
    """ext/cuda/binding_cuda.cpp with the host compiler and torch's headers, as torch's builder compiles
    it in a CUDA build (syntax and types only: no CUDA torch to link against here). It shares its
    argument checks with the CPU binding through ext/include/gsvc_binding.h."""
    from torch.utils.cpp_extension import include_paths

    includes = [*include_paths(), sysconfig.get_paths()["include"], str(_cuda_include_dir()),
                str(EXT / "include"), str(EXT / "cuda")]
    generated = "c10/cuda/impl/cuda_cmake_macros.h"
    if not any((Path(p) / generated).is_file() for p in include_paths()):
        # A CPU-only torch wheel ships c10/cuda but not this header that torch's CMake writes for CUDA
        # builds; its one definition is all the binding's includes need from it.
        (tmp_path / generated).parent.mkdir(parents=True)
        (tmp_path / generated).write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        includes.append(str(tmp_path))
    cmd = [os.environ.get("CXX", "c++"), "-fsyntax-only", "-std=c++17", "-w",
           "-DTORCH_EXTENSION_NAME=gsvc_render_cuda_check", *(f"-I{p}" for p in includes),
           str(EXT / "cuda" / "binding_cuda.cpp")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "gsvc_binding.h" in (EXT / "cuda" / "binding_cuda.cpp").read_text()
    assert "gsvc_binding.h" in (EXT / "cpu" / "binding.cpp").read_text()


@pytest.mark.skipif(torch.version.cuda is not None, reason="this torch has CUDA")
def test_cuda_backend_says_why_it_is_unavailable():
    from gsvc_cli.render.cuda import cuda_kernels

    with pytest.raises(RuntimeError, match="built without CUDA"):
        cuda_kernels()


@pytest.mark.skipif(_no_gpu_reason() is not None, reason=_no_gpu_reason() or "")
@pytest.mark.parametrize(("height", "width", "n", "seed"),
                         [(16, 16, 40, 0), (37, 53, 300, 1), (70, 41, 900, 2)])
def test_cuda_kernels_match_the_reference_values_and_gradients(height, width, n, seed):
    from gsvc_cli.render import render
    from gsvc_cli.render.reference import render_reference

    splats = random_splats(n, height, width, seed)
    grad_out = torch.randn(3, height, width, generator=torch.Generator().manual_seed(seed + 100))
    results = {}
    for backend in ("cuda", "reference"):
        device = "cuda" if backend == "cuda" else "cpu"
        params = [t.to(device).requires_grad_(True) for t in splats]
        if backend == "cuda":
            out = render(*params, height, width, backend="cuda")
        else:
            out = render_reference(*params, height, width)
        out.backward(grad_out.to(device))
        results[backend] = [out.detach().cpu()] + [p.grad.cpu() for p in params]
    (out, *grads), (ref, *ref_grads) = results["cuda"], results["reference"]
    assert out.dtype == torch.float32 and out.shape == (3, height, width)
    assert float((out - ref).abs().max()) <= 1e-5 * float(ref.max() - ref.min())
    for name, a, b in zip(("means", "chol", "colors"), grads, ref_grads, strict=True):
        assert float((a - b).abs().max()) <= 1e-4 * (float(b.abs().max()) or 1.0), name


@pytest.mark.skipif(_no_gpu_reason() is not None, reason=_no_gpu_reason() or "")
def test_cuda_binding_refuses_what_the_kernels_cannot_read():
    from gsvc_cli.render.cuda import cuda_kernels

    kernels = cuda_kernels()
    means, chol, colors = (t.cuda() for t in random_splats(6, 12, 20, seed=22))
    image, *binning = kernels.forward(means, chol, colors, 12, 20)
    assert image.shape == (3, 12, 20)
    with pytest.raises(RuntimeError, match="bad image size"):
        kernels.forward(means, chol, colors, 0, 20)
    with pytest.raises(RuntimeError, match="means must be a CUDA tensor"):
        kernels.forward(means.cpu(), chol, colors, 12, 20)
    with pytest.raises(RuntimeError, match="tile_offsets must be forward's"):
        kernels.backward(torch.ones(3, 40, 20, device="cuda"), chol, colors, *binning, True, True)

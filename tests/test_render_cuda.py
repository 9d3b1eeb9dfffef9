"""The CUDA kernels build: nvcc compiles ext/cuda/render_cuda.cu (raw pointers, no torch) to an object.

Nothing here can run them (torch is CPU-only and there is no GPU); the shared maths in
ext/include/gsvc_splat.h is exercised by the CPU tests, and this check keeps the CUDA sources honest.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[1] / "ext"


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

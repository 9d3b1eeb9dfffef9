"""gsvc_cli/render/build.py: one cache key for the CPU and CUDA kernels, so a cached shared object is
rebuilt whenever anything that changes it changes (and only then)."""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace

import torch

from gsvc_cli.render import build
from gsvc_cli.render.build import CPU_SPEC, CUDA_SPEC, build_key, build_name, kernel_source_dir


def test_one_key_function_names_both_backends():
    cpu, cuda = build_key(CPU_SPEC), build_key(CUDA_SPEC)
    assert len(cpu) == len(cuda) == 16 and cpu != cuda
    assert build_key(CPU_SPEC) == cpu  # stable from call to call
    assert build_name(CPU_SPEC) == f"gsvc_render_cpu_{cpu}"
    assert build_name(CUDA_SPEC) == f"gsvc_render_cuda_{cuda}"


def test_python_and_torch_versions_are_in_both_keys(monkeypatch):
    cpu, cuda = build_key(CPU_SPEC), build_key(CUDA_SPEC)
    monkeypatch.setattr(sys, "version", sys.version + " (another interpreter build)")
    assert build_key(CPU_SPEC) != cpu and build_key(CUDA_SPEC) != cuda
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", torch.__version__ + "+other")
    assert build_key(CPU_SPEC) != cpu and build_key(CUDA_SPEC) != cuda


def test_flags_and_target_hardware_are_in_the_right_keys(monkeypatch):
    cpu, cuda = build_key(CPU_SPEC), build_key(CUDA_SPEC)
    assert build_key(replace(CPU_SPEC, cflags=(*CPU_SPEC.cflags, "-g"))) != cpu
    assert build_key(replace(CUDA_SPEC, cuda_cflags=(*CUDA_SPEC.cuda_cflags, "-lineinfo"))) != cuda
    # -march=native: another CPU means another CPU build, but the CUDA build (host code without
    # -march=native) stays valid, as in a Docker image built on one machine and run on another.
    monkeypatch.setattr(build, "_cpu_fingerprint", lambda: "another cpu")
    assert build_key(CPU_SPEC) != cpu and build_key(CUDA_SPEC) == cuda
    monkeypatch.undo()
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "12.0+PTX")
    other_arch = build_key(CUDA_SPEC)
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0")
    assert build_key(CUDA_SPEC) != other_arch and build_key(CPU_SPEC) == cpu


def test_source_edits_change_the_keys_they_should(tmp_path):
    ext = tmp_path / "ext"
    shutil.copytree(kernel_source_dir(), ext)
    cpu, cuda = build_key(CPU_SPEC, ext), build_key(CUDA_SPEC, ext)
    assert (cpu, cuda) == (build_key(CPU_SPEC), build_key(CUDA_SPEC))  # a copy is the same source
    kernel = ext / "cuda" / "render_cuda.cu"
    kernel.write_text(kernel.read_text() + "\n// edited\n")
    assert build_key(CUDA_SPEC, ext) != cuda and build_key(CPU_SPEC, ext) == cpu
    header = ext / "include" / "gsvc_splat.h"  # shared by every kernel
    header.write_text(header.read_text() + "\n// edited\n")
    assert build_key(CPU_SPEC, ext) != cpu

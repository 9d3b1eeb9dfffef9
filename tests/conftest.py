"""Shared test fixtures: the whole clips in ../shared/data (optional) and the ffmpeg binary from
imageio-ffmpeg. Plain helpers (data paths, loaders, synthetic splats, the CLI runner) are in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The whole real clips (skips the test when ../shared/data is absent). Only for tests that
    need a whole or large clip; everything else uses the crops in tests/data."""
    if not (SHARED_DATA / "clips").is_dir():
        pytest.skip(f"whole clips not found at {SHARED_DATA} (this test needs more than tests/data holds)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    """The imageio-ffmpeg binary (built with libx264 and libvmaf)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()

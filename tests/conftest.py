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


@pytest.fixture(scope="session")
def pan_reference():
    """A real previous frame for P-frame tests: the pan clip of tests/data as YUV 4:4:4 float images
    [3,64,96], and its frame 0 fitted (150 splats, preset fast, 60 steps) and quantised at the default
    steps, in the intra coder's order (as the encoder keeps it). The pan moves about 9 px left and 2 px
    up per frame. Returns (images, q, steps, channel weights)."""
    from dataclasses import replace

    from helpers import PAN

    from gsvc_cli.codec.bitstream.frame_coding import encode_intra_frame
    from gsvc_cli.codec.bitstream.quantise import QuantSteps, quantise
    from gsvc_cli.codec.encoder.fitting import fit_frame
    from gsvc_cli.codec.encoder.presets import get_preset
    from gsvc_cli.video import open_video

    weights = (6.0, 1.0, 1.0)
    with open_video(PAN) as reader:
        images = [frame.to_yuv444_float() for frame in reader]
    config = replace(get_preset("fast").intra, max_steps=60)
    splats, _ = fit_frame(images[0], 150, config=config, seed=0, channel_weights=weights)
    steps = QuantSteps.default()
    q = quantise(splats, steps)
    q = q.select(encode_intra_frame(q, steps).order)
    return images, q, steps, weights

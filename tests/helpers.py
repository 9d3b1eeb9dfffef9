"""Helpers shared by the test modules: where the test data lives, loaders for it, synthetic splats
and the real CLI in a subprocess. Fixtures live in conftest.py; plain functions live here so that
test modules import them by name (`from helpers import ...`) instead of keeping copies.

Test data comes from two places:
- tests/data/ (in the repository): tiny crops of real clips and one Kodak crop, so that
  `python3 -m pytest -q` tests the codec on a fresh clone (origins and licences in tests/data/SOURCE.md);
- ../shared/data (beside the repository, as on CI): whole clips, for the few tests that need them;
  those skip when it is absent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from gsvc_cli.codec.splats import Splats

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"

# The in-repository clips (lossless raw Y4M crops of real clips; see tests/data/SOURCE.md).
HEADS = TEST_DATA / "vt2people_64x48_9f.y4m"  # webcam call, low motion, 12 fps
CARS = TEST_DATA / "cars_96x64_8f.y4m"  # traffic, high object motion, 25 fps
PAN = TEST_DATA / "pan_kodim23_96x64_4f.y4m"  # camera pan with a vertical sway across Kodak 23
SCENECUT = TEST_DATA / "scenecut_kodim05_kodim14_96x64_4f.y4m"  # hard cut after 2 frames
KODIM23 = TEST_DATA / "kodim23_256x192.png"  # Kodak 23 at x 192..448, y 96..288 (the parrots)
KODIM23_ORIGIN = (192, 96)  # (x, y) of the crop in the 768x512 original


def bundled_clip() -> Path:
    """The package's demo clip (gsvc_cli/data/*.y4m): a real lossless clip of at least 176x176, found by
    glob because its name may change with its content."""
    clips = sorted((ROOT / "gsvc_cli" / "data").glob("*.y4m"))
    assert len(clips) == 1, f"expected one bundled .y4m in gsvc_cli/data, found {clips}"
    return clips[0]


def load_rgb(path: Path) -> torch.Tensor:
    """An image file (PNG) as a float [3,H,W] RGB tensor in [0, 1]."""
    import av

    with av.open(str(path)) as container:
        rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255


def kodak_crop(x: int, y: int, width: int, height: int) -> torch.Tensor:
    """A crop of Kodak 23 at (x, y) in the ORIGINAL image's coordinates, from the in-repo crop
    (so crops chosen on the 768x512 original keep their pixels)."""
    image = load_rgb(KODIM23)
    x0, y0 = x - KODIM23_ORIGIN[0], y - KODIM23_ORIGIN[1]
    if x0 < 0 or y0 < 0 or x0 + width > image.shape[2] or y0 + height > image.shape[1]:
        raise ValueError(f"crop {width}x{height} at ({x}, {y}) is outside the in-repo Kodak 23 crop")
    return image[:, y0:y0 + height, x0:x0 + width].contiguous()


def realistic_splats(n: int, width: int, height: int, seed: int, wide_colours: bool = False) -> Splats:
    """Splats shaped like a fitted frame's: centres over the frame (a little outside too), 0.3..30 px
    scales around 2 px, some shear; YUV-like colours (luma varying across the frame, small chroma),
    or with `wide_colours` uniform in [-0.5, 1.5] (fitted colours are unclamped)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g) * torch.tensor([width + 4.0, height + 4.0]) - 2.0
    scales = (torch.randn(n, 2, generator=g) * 0.7 + 0.8).exp().clamp(0.3, 30.0)
    l2 = torch.randn(n, generator=g) * 0.5 * scales[:, 1]
    if wide_colours:
        colors = torch.rand(n, 3, generator=g) * 2.0 - 0.5
    else:
        luma = 0.4 + 0.3 * torch.sin(means[:, :1] / width * 6) + 0.15 * torch.randn(n, 1, generator=g)
        chroma = 0.05 * torch.randn(n, 2, generator=g)
        colors = torch.cat([luma, chroma], 1)
    return Splats(means, torch.stack([scales[:, 0], l2, scales[:, 1]], 1), colors)


def random_splats(n: int, height: int, width: int, seed: int, max_sigma: float = 6.0
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(means, chol, colors) of anisotropic splats of many sizes, some partly or wholly off the frame,
    some with negative diagonals (legal): stress inputs for the renderers."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g) * torch.tensor([width + 30.0, height + 30.0]) - 15
    l1 = 0.3 + torch.rand(n, generator=g) * max_sigma
    l3 = 0.3 + torch.rand(n, generator=g) * max_sigma
    l2 = torch.randn(n, generator=g) * max_sigma / 2
    signs = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
    chol = torch.stack([l1 * signs, l2, l3], 1)
    colors = torch.randn(n, 3, generator=g)
    return means, chol, colors


def run_gsvc_cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (`python -m gsvc_cli ...`), capturing text output."""
    return subprocess.run([sys.executable, "-m", "gsvc_cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)

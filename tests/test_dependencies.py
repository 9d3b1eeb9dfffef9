"""pyproject.toml: every required dependency is used by the package (test-only tools go in `dev`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Required, but run rather than imported: torch.utils.cpp_extension builds the kernels with ninja.
NOT_IMPORTED = {"ninja": "gsvc_cli/render/build.py"}
# Distributions whose import name is not their own.
IMPORT_NAMES = {"pillow": "PIL", "imageio-ffmpeg": "imageio_ffmpeg"}


def _requirement_names(requirements: list[str]) -> list[str]:
    return [re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements]


def test_every_required_dependency_is_used_by_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sources = "\n".join(p.read_text() for p in (ROOT / "gsvc_cli").rglob("*.py"))
    unused = []
    for name in _requirement_names(project["dependencies"]):
        if name in NOT_IMPORTED:
            assert "cpp_extension" in (ROOT / NOT_IMPORTED[name]).read_text()
            continue
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        if not re.search(rf"^\s*(import|from)\s+{re.escape(module)}\b", sources, re.M):
            unused.append(name)
    assert not unused, f"required dependencies nothing in gsvc_cli imports: {unused} (move them to an extra)"


def test_gsplat_is_a_test_tool_not_a_requirement():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "gsplat" not in _requirement_names(project["dependencies"])
    assert "gsplat" in _requirement_names(project["optional-dependencies"]["dev"])
    assert "gsplat" in (ROOT / "tests" / "test_render_binning.py").read_text()

"""The decoder needs the bitstream and the renderer, never the encoder (issue #11)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden" / "small.gsvc"

LOADED_AFTER_DECODING = """
import json, sys
from pathlib import Path
from gsvc_cli.codec.decoder import decode_video
decode_video(Path(sys.argv[1]), Path(sys.argv[2]), overwrite=True)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("gsvc_cli"))))
"""


def test_decoding_a_file_loads_no_encoder_module(tmp_path: Path) -> None:
    out = tmp_path / "out.y4m"
    result = subprocess.run([sys.executable, "-c", LOADED_AFTER_DECODING, str(GOLDEN), str(out)],
                            capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.stat().st_size > 0  # it really decoded
    assert "gsvc_cli.codec.decoder" in loaded and "gsvc_cli.codec.bitstream.frame_coding" in loaded
    encoder = [m for m in loaded if m.startswith("gsvc_cli.codec.encoder")]
    assert encoder == [], f"decoding imported encoder code: {encoder}"


def test_gsvc_decode_to_y4m_imports_no_torch(tmp_path: Path) -> None:
    """Start-up is most of a short decode, and importing torch was most of start-up."""
    out = tmp_path / "out.y4m"
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "gsvc_cli", "decode", str(GOLDEN),
                             "-o", str(out), "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.stat().st_size > 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "gsvc_cli.codec.decoder" in imported and "gsvc_cli.render.capi" in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_gsvc_info_imports_no_torch() -> None:
    """`gsvc info` decodes every payload for its bit accounting; that needs no torch either."""
    command = [sys.executable, "-X", "importtime", "-m", "gsvc_cli", "info", str(GOLDEN), "--json"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    frames = json.loads(result.stdout)["frames"]
    assert len(frames) == 7  # the golden file: I P M M M P I, the second M in quarter pixels + residual
    assert [f["field"] and f["field"]["unit"] for f in frames] == [None, None, "1 px", "1/4 px", "1/4 px",
                                                                     None, None]
    assert frames[2]["field"] == {"cell": 32, "cells": 4, "unit": "1 px", "overlapped": True,
                                  "filter": None, "residual_splats": 0}
    assert frames[3]["field"]["residual_splats"] == frames[3]["splats"] == 6
    assert [frames[k]["field"]["filter"] for k in (3, 4)] == ["cubic", "8-tap"]
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "gsvc_cli.codec.bitstream.frame_coding" in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_another_render_backend_decodes_through_torch(tmp_path: Path, monkeypatch) -> None:
    """$GSVC_RENDER_BACKEND=reference still decodes (the torch renderer, within float rounding of
    the kernels: codes at most 1 apart)."""
    import numpy as np

    from gsvc_cli.codec.decoder import decode_video
    from gsvc_cli.video import open_video

    native, reference = tmp_path / "native.y4m", tmp_path / "reference.y4m"
    decode_video(GOLDEN, native)
    monkeypatch.setenv("GSVC_RENDER_BACKEND", "reference")
    decode_video(GOLDEN, reference)
    with open_video(native) as a, open_video(reference) as b:
        for fa, fb in zip(a, b, strict=True):
            for pa, pb in zip(fa.planes, fb.planes, strict=True):
                assert np.abs(pa.astype(int) - pb.astype(int)).max() <= 1

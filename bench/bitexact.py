"""Check that a change leaves the encoder's output byte for byte as it was (a restructuring must).

Usage: python bench/bitexact.py --baseline REV [--cases quick|all]
Encodes a fixed set of real inputs with the gsvc_cli package of git revision REV and with the
working tree, each through the real CLI (`python -m gsvc_cli encode ...`), and prints the SHA-256
of both .gsvc files per case and whether they are identical. Exit status 1 when any case differs.
The cases cover every rate target (--bpp, --psnr, --splats), inter coding with and without global
motion, scene cuts and the presets; inputs come from ../shared/data/clips and the bundled clip.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT.parent / "shared" / "data" / "clips"
BUNDLED = ROOT / "gsvc_cli" / "data"

QUICK = [
    ("bundled bpp fast", [str(next(BUNDLED.glob("*.y4m"))), "--bpp", "0.4", "--preset", "fast",
                          "--frames", "3"]),
    ("cuts bpp fast", [str(CLIPS / "cuts_qcif_62f.mp4"), "--bpp", "0.5", "--preset", "fast",
                       "--start", "6", "--frames", "8"]),
    ("pan splats", [str(CLIPS / "pan_kodim23_cif_48f.y4m"), "--splats", "400", "--preset", "fast",
                    "--frames", "3"]),
    ("foreman psnr", [str(CLIPS / "foreman_cif_60f.mp4"), "--psnr", "28", "--preset", "fast",
                      "--frames", "2"]),
]
ALL = QUICK + [
    ("cars bpp medium", [str(CLIPS / "cars_320x240_30f.y4m"), "--bpp", "0.3", "--preset", "medium",
                         "--frames", "3"]),
    ("vt2people gop2", [str(CLIPS / "vt2people_320x192_9f.y4m"), "--bpp", "0.3", "--preset", "fast",
                        "--gop", "2", "--frames", "4"]),
]


def checkout(rev: str, into: Path) -> Path:
    """gsvc_cli/ and ext/ (the kernels: without them rendering falls back to the slow torch
    reference) of git revision `rev`, extracted into `into`; returns the folder for PYTHONPATH."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "gsvc_cli", "ext"], capture_output=True,
                         check=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into


def encode(pythonpath: Path, args: list[str], out: Path) -> str:
    """Encode with the package at `pythonpath`; return the file's SHA-256."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gsvc_cli", "encode", *args, "-o", str(out), "-y", "-q"]
    # cwd elsewhere: `python -m` puts the cwd first on sys.path, ahead of PYTHONPATH
    subprocess.run(cmd, check=True, env=env, cwd=tempfile.gettempdir(), capture_output=True)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="REV")
    parser.add_argument("--cases", choices=("quick", "all"), default="quick")
    args = parser.parse_args()
    cases = QUICK if args.cases == "quick" else ALL
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        base = checkout(args.baseline, Path(tmp) / "baseline")
        print(f"{'case':20s} {'baseline ' + args.baseline:20s} {'working tree':20s} same")
        for name, case in cases:
            a = encode(base, case, Path(tmp) / "a.gsvc")
            b = encode(ROOT, case, Path(tmp) / "b.gsvc")
            same = a == b
            differ += not same
            print(f"{name:20s} {a[:16]:20s} {b[:16]:20s} {'yes' if same else 'NO'}", flush=True)
    print(f"{len(cases) - differ} of {len(cases)} cases byte-identical")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())

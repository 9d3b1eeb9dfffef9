"""The work folder of a chunked encode: finished chunks kept on disk until the file is written.

`OUT.gsvc` is encoded through `.OUT.gsvc.parts/` beside it (documented in `gsvc encode --help`,
the man page and the README). It holds `plan.json` (the chunk plan and the fingerprint of the
encode) and one `chunk-NNNNN.part` per finished chunk, each written to a temp name and renamed, so
a part is whole or absent whatever interrupts the encode. A part records the fingerprint of the
encode it belongs to (input path, size and mtime, reader options, settings, chunk plan, encoder
and format versions) and CRCs of its payloads; `--resume` keeps only parts that match and read
back intact. Once the .gsvc is in place the folder is removed.

Part file layout: b"GSVCPART", u32 JSON length, the JSON (fingerprint, chunk, one entry per frame:
type, splats, payload length, CRC32, report), then the payloads back to back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsvc_cli.atomic import signals_raise
from gsvc_cli.chunked.plan import Chunk, ChunkPlan
from gsvc_cli.codec.encoder.gop import FrameReport
from gsvc_cli.errors import UsageError

PART_MAGIC = b"GSVCPART"
_LEN = struct.Struct("<I")


def work_folder_for(output: Path) -> Path:
    """`.NAME.parts` beside `output` (a dot file, as the atomic writer's temp files are)."""
    output = Path(output)
    return output.with_name(f".{output.name}.parts")


def fingerprint(data: dict[str, Any]) -> str:
    """SHA-256 of a JSON description: equal descriptions, equal encodes."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class ChunkResult:
    """One coded chunk: its records (type, splat count, payload) and per-frame reports."""

    chunk: Chunk
    records: list[tuple[str, int, bytes]]
    reports: list[FrameReport]
    seconds: float = 0.0


def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder (whole or absent)."""
    with signals_raise():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class WorkFolder:
    """The parts of one encode (see the module docstring)."""

    def __init__(self, output: Path) -> None:
        self.path = work_folder_for(output)

    # -- the plan -----------------------------------------------------------------------------
    def load_plan(self, key: str) -> ChunkPlan | None:
        """The stored plan if it was made for the encode described by `key`, else None."""
        try:
            data = json.loads((self.path / "plan.json").read_text())
            return ChunkPlan.from_json(data["plan"]) if data.get("key") == key else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def prepare(self, key: str, plan: ChunkPlan, resume: bool, overwrite: bool) -> None:
        """Create the folder (or keep it, resuming) and store the plan.

        Refuses a folder left by an interrupted encode unless resuming (or told to overwrite,
        which starts over): its parts are someone's finished work.
        """
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path}: exists and is not a work folder")
        if self.path.is_dir() and not resume:
            if not overwrite:
                raise UsageError(f"{self.path}: an interrupted encode left its finished chunks here",
                                 hint="add --resume to continue it, or -y to start over")
            self.remove()
        self.path.mkdir(exist_ok=True)
        _atomic_write(self.path / "plan.json",
                      json.dumps({"key": key, "plan": plan.to_json()}, indent=1).encode())

    def remove(self) -> None:
        """Delete the folder and everything in it (the encode is complete, or starts over)."""
        shutil.rmtree(self.path, ignore_errors=True)

    # -- parts --------------------------------------------------------------------------------
    def part_path(self, chunk: Chunk) -> Path:
        return self.path / f"chunk-{chunk.index:05d}.part"

    def store(self, result: ChunkResult, stamp: str) -> None:
        """Save a finished chunk atomically, tagged with the encode's fingerprint `stamp`."""
        frames = []
        for (ftype, n_splats, payload), rep in zip(result.records, result.reports, strict=True):
            frames.append({"type": ftype, "splats": n_splats, "length": len(payload),
                           "crc": zlib.crc32(payload), "report": dataclasses.asdict(rep)})
        meta = json.dumps({"fingerprint": stamp, "chunk": dataclasses.asdict(result.chunk),
                           "seconds": result.seconds, "frames": frames}).encode()
        body = b"".join(payload for _, _, payload in result.records)
        _atomic_write(self.part_path(result.chunk), PART_MAGIC + _LEN.pack(len(meta)) + meta + body)

    def _read_meta(self, chunk: Chunk, stamp: str) -> tuple[dict, int] | None:
        """A part's JSON and where its payloads begin, if it belongs to this encode and chunk."""
        try:
            with open(self.part_path(chunk), "rb") as f:
                head = f.read(len(PART_MAGIC) + _LEN.size)
                if len(head) < len(PART_MAGIC) + _LEN.size or head[:len(PART_MAGIC)] != PART_MAGIC:
                    return None
                (size,) = _LEN.unpack_from(head, len(PART_MAGIC))
                meta = json.loads(f.read(size))
        except (OSError, ValueError):
            return None
        if meta.get("fingerprint") != stamp or meta.get("chunk") != dataclasses.asdict(chunk):
            return None
        return meta, len(head) + size

    def is_done(self, chunk: Chunk, stamp: str) -> bool:
        """True when the chunk's part belongs to this encode and every payload passes its CRC."""
        try:
            return len(list(self.records(chunk, stamp))) == chunk.count
        except (OSError, ValueError):
            return False

    def records(self, chunk: Chunk, stamp: str) -> Iterator[tuple[str, int, bytes]]:
        """The chunk's records, one payload in memory at a time; ValueError if damaged."""
        found = self._read_meta(chunk, stamp)
        if found is None:
            raise ValueError(f"{self.part_path(chunk)}: not a part of this encode")
        meta, offset = found
        with open(self.part_path(chunk), "rb") as f:
            f.seek(offset)
            for entry in meta["frames"]:
                payload = f.read(entry["length"])
                if len(payload) != entry["length"] or zlib.crc32(payload) != entry["crc"]:
                    raise ValueError(f"{self.part_path(chunk)}: damaged payload")
                yield entry["type"], int(entry["splats"]), payload

    def reports(self, chunk: Chunk, stamp: str) -> tuple[list[FrameReport], float]:
        """The chunk's per-frame reports and the seconds it took to encode."""
        found = self._read_meta(chunk, stamp)
        if found is None:
            raise ValueError(f"{self.part_path(chunk)}: not a part of this encode")
        meta = found[0]
        return [FrameReport(**e["report"]) for e in meta["frames"]], float(meta.get("seconds", 0.0))

"""The .gsvc container: file header, checksummed frame records, frame index, fixed-size trailer.

Records and index entries carry their counts as varints (format 10.0): a record costs 7-11 bytes
beyond its payload and an index entry 3-7, where the fixed-width layout of formats 3-9 (still
read) cost 17 and 20: at quality 27, 7% of foreman's file and 13% of the Kodak pan's, whose
frames are a few hundred bytes.

The container knows nothing about splats: a record is (type "I"/"P"/"M", splat count, payload bytes),
the payload coming from `frame_coding`. docs/FORMAT.md is the byte-level contract.

Writing (the temp file beside the target is renamed into place only by a successful `close`):

    header = FileHeader(width=1920, height=1080, fps_num=30000, fps_den=1001,
                        colour_space="yuv", matrix="bt709", colour_range="limited",
                        params={"preset": "medium"})
    with GsvcWriter(path, header, overwrite=False) as out:    # UsageError if path exists
        out.write_frame("I", n_splats, payload)              # frame_count is patched on close
        out.projected_size()                                  # file bytes if closed now (rate control)

Reading:

    with GsvcReader(path) as gsvc:              # header + index + trailer only, no payloads
        gsvc.header, gsvc.index                  # FileHeader, list[IndexEntry] (for `gsvc info`)
        record = gsvc.read_frame(k)              # random access; FormatError names the frame
    with GsvcReader(path, ignore_errors=True) as gsvc:
        for k, record in gsvc.frames():          # record is None for a bad frame
            ...
        gsvc.bad_frames                           # the frames that were skipped, in order
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gsvc_cli.atomic import atomic_output
from gsvc_cli.codec.bitstream.entropy import ByteReader, put_varint
from gsvc_cli.errors import FormatError, GsvcError, InputError, UsageError

MAGIC = b"GSVC\r\n\x1a\n"
RECORD_MAGIC = b"GSFR"
INDEX_MAGIC = b"GSIX"
TRAILER_MAGIC = b"GSVE"
FORMAT_MAJOR = 14
FORMAT_MINOR = 0
# 14.0: entropy model kinds LADDER (7: LAPLACE's decay from a ladder) and BINARY (128-255);
# 13.0: flagged fields' zero flags split by the last M-frame's moving cells (unit byte + 16);
# 12.0: flagged fields with median-predicted moving cells (unit byte + 32);
# 11.0: entropy model kind CLASSES (signed bit-length classes and raw bits);
# 10.0: M-frames repeat earlier M-frames' entropy models and residual steps;
# 9.0: M-frames read through the 8-tap filter; 8.0: overlapped cells; 7.0: M-frame fields with
# zero flags; 6.0: M-frames with residual splats; 5.0: quarter-pixel M-frames; 4.0: M-frames;
# 3.0: P-frame motion field; 2.0: context modelling; 1.1: sar, colour tags

_HEADER_FIXED = struct.Struct("<8sHHIIIIIIBBBBH")  # magic .. kv count: 42 bytes
_LEGACY_RECORD_HEAD = struct.Struct("<4scII")  # formats 3-9: magic, type, splat count, payload length
_INDEX_HEAD = struct.Struct("<4sI")  # magic, frame count: 8 bytes
_LEGACY_INDEX_ENTRY = struct.Struct("<QIIc3x")  # formats 3-9: offset, payload length, splat count, type
COMPACT_MAJOR = 10
"""The first major whose records and index entries are compact (type byte, varint count and length)."""
_TRAILER = struct.Struct("<QI4s")  # index offset, index CRC32, magic: 16 bytes
_CRC = struct.Struct("<I")

COLOUR_SPACES = ("rgb", "yuv")
MATRICES = ("none", "bt601", "bt709")
RANGES = ("full", "limited")
FRAME_TYPES = ("I", "P", "M")
READABLE_MAJORS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, FORMAT_MAJOR)
# 3.x: 14.0 without M-frames; 4.x: without quarter pixels; 5.x: without residual splats; 6.x:
# without flagged fields; 7.x: without overlapped cells; 8.x: without the 8-tap filter; 9.x: without
# model memory; 10.x: without CLASSES models; 11.x: without median-predicted fields; 12.x: without
# flags split by the last field; 13.x: without LADDER and BINARY models
MAX_RECORD_PAYLOAD = (1 << 32) - 1


@dataclass
class FileHeader:
    """What a .gsvc file says about itself before any frame.

    width, height: frame size in pixels. fps_num / fps_den: frame rate as an exact fraction.
    frame_count: number of frame records (the writer fills it in on close).
    colour_space: "rgb" or "yuv" (the space the splat colours live in); matrix: "none", "bt601" or
    "bt709" (YUV <-> RGB); colour_range: "full" or "limited".
    params: coding parameters as short UTF-8 key/value strings (keys < 256 bytes, values < 64 KiB).
    version: (major, minor) of the format the file was written with.
    """

    width: int
    height: int
    fps_num: int
    fps_den: int
    colour_space: str = "yuv"
    matrix: str = "bt709"
    colour_range: str = "full"
    params: dict[str, str] = field(default_factory=dict)
    frame_count: int = 0
    version: tuple[int, int] = (FORMAT_MAJOR, FORMAT_MINOR)

    def validate(self) -> None:
        """Raise UsageError if a field cannot be written."""
        for name in ("width", "height", "fps_num", "fps_den"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 < value < (1 << 32):
                raise UsageError(f"header field {name} must be a positive 32-bit integer, got {value!r}")
        if self.colour_space not in COLOUR_SPACES:
            raise UsageError(f"colour space must be one of {COLOUR_SPACES}, got {self.colour_space!r}")
        if self.matrix not in MATRICES:
            raise UsageError(f"colour matrix must be one of {MATRICES}, got {self.matrix!r}")
        if self.colour_range not in RANGES:
            raise UsageError(f"colour range must be one of {RANGES}, got {self.colour_range!r}")
        if len(self.params) >= (1 << 16):
            raise UsageError("too many coding parameters")
        for key, value in self.params.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise UsageError(f"coding parameter {key!r} must map a string to a string")
            if not 0 < len(key.encode()) < 256 or len(value.encode()) >= (1 << 16):
                raise UsageError(f"coding parameter {key!r} is too long or empty")

    def to_bytes(self) -> bytes:
        """The header as stored, CRC32 included (see docs/FORMAT.md, "File header")."""
        self.validate()
        kv = bytearray()
        for key, value in self.params.items():
            k, v = key.encode(), value.encode()
            kv += struct.pack("<B", len(k)) + k + struct.pack("<H", len(v)) + v
        size = _HEADER_FIXED.size + len(kv) + _CRC.size
        fixed = _HEADER_FIXED.pack(
            MAGIC, FORMAT_MAJOR, FORMAT_MINOR, size, self.width, self.height, self.fps_num,
            self.fps_den, self.frame_count, COLOUR_SPACES.index(self.colour_space),
            MATRICES.index(self.matrix), RANGES.index(self.colour_range), 0, len(self.params),
        )
        body = fixed + bytes(kv)
        return body + _CRC.pack(zlib.crc32(body))


@dataclass(frozen=True)
class IndexEntry:
    """Where frame k lives: record offset (bytes from file start), type, splat count, payload size,
    and the size of the record's head (compact: 3-11 bytes; formats 3-9: 13)."""

    offset: int
    frame_type: str
    n_splats: int
    payload_length: int
    head_size: int

    @property
    def record_length(self) -> int:
        return self.head_size + self.payload_length + _CRC.size


_MAX_VARINT_BYTES = 5
"""Longest varint a compact head may hold (FORMAT.md: 1-5 bytes)."""


def _compact_head(frame_type: str, n_splats: int, payload_length: int) -> bytes:
    """A record's head, which is also its index entry: type byte, varint count, varint length."""
    head = bytearray(frame_type.encode())
    put_varint(head, n_splats)
    put_varint(head, payload_length)
    return bytes(head)


def _read_compact_head(reader: ByteReader) -> tuple[str, int, int]:
    """(type, splat count, payload length) of the compact head at the reader's position; FormatError
    (the reader's, or its own) if it is truncated or malformed."""
    frame_type = chr(reader.u8())
    start = reader.pos
    n_splats = reader.varint()
    middle = reader.pos
    length = reader.varint()
    if (frame_type not in FRAME_TYPES or max(middle - start, reader.pos - middle) > _MAX_VARINT_BYTES
            or n_splats >= (1 << 32) or length > MAX_RECORD_PAYLOAD):
        raise FormatError(f"{reader.what}: malformed record head")
    return frame_type, n_splats, length


@dataclass(frozen=True)
class FrameRecord:
    """One frame record read back: its number, type, splat count, offset and payload."""

    index: int
    frame_type: str
    n_splats: int
    offset: int
    payload: bytes


_TYPICAL_COUNT = (1 << 21) - 1
"""Largest splat count or payload length whose varint takes 3 bytes (the estimates' bound)."""


def record_overhead(n_splats: int = _TYPICAL_COUNT, payload_length: int = _TYPICAL_COUNT) -> int:
    """Bytes a record adds around its payload (head and CRC): exact for the given count and length;
    by default a bound for any frame below 2 MiB and 2M splats (rate control)."""
    return len(_compact_head("I", n_splats, payload_length)) + _CRC.size


def index_and_trailer_size(frame_count: int) -> int:
    """Bytes of the index and trailer of a file with `frame_count` frames, each entry counted at
    the bound `record_overhead()` assumes (rate control: a file's own are at most this)."""
    return _INDEX_HEAD.size + frame_count * (record_overhead() - _CRC.size) + _TRAILER.size


# ----------------------------------------------------------------------------------------------
# writing


class GsvcWriter:
    """Writes a .gsvc file through a temp file that `close()` renames onto `path`.

    Leaving the `with` block by an exception (or calling `abort()`) removes the temp file and
    leaves `path` untouched. An existing `path` is refused (UsageError) unless overwrite=True.
    """

    def __init__(self, path: str | os.PathLike[str], header: FileHeader, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.header = FileHeader(**{**header.__dict__, "params": dict(header.params), "frame_count": 0,
                                    "version": (FORMAT_MAJOR, FORMAT_MINOR)})
        self.header.validate()
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_output(self.path, overwrite))
        try:
            self._file: BinaryIO = self._stack.enter_context(open(tmp, "wb"))  # noqa: SIM115
            self._header_bytes = self.header.to_bytes()
            self._file.write(self._header_bytes)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        self.index: list[IndexEntry] = []
        self._offset = len(self._header_bytes)
        self._closed = False

    def write_frame(self, frame_type: str, n_splats: int, payload: bytes) -> int:
        """Append one record; returns the record's size in bytes."""
        if self._closed:
            raise GsvcError(f"{self.path}: writer already closed")
        if frame_type not in FRAME_TYPES:
            raise GsvcError(f"{self.path}: frame type must be 'I', 'P' or 'M', got {frame_type!r}")
        if frame_type != "I" and not self.index:
            raise GsvcError(f"{self.path}: the first frame must be an I-frame")
        if not 0 <= n_splats < (1 << 32) or len(payload) > MAX_RECORD_PAYLOAD:
            raise GsvcError(f"{self.path}: frame {len(self.index)} too large to store")
        head = _compact_head(frame_type, n_splats, len(payload))
        crc = zlib.crc32(payload, zlib.crc32(head))
        record = head + payload + _CRC.pack(crc)
        self._file.write(record)
        self.index.append(IndexEntry(self._offset, frame_type, n_splats, len(payload), len(head)))
        self._offset += len(record)
        return len(record)

    @property
    def bytes_written(self) -> int:
        """Header and records written so far."""
        return self._offset

    def projected_size(self, extra_frames: int = 0) -> int:
        """File size if closed now (plus index entries, at their bound, for `extra_frames` more frames)."""
        entries = sum(e.head_size for e in self.index)
        return self._offset + entries + index_and_trailer_size(extra_frames)

    def close(self) -> None:
        """Write index and trailer, patch the frame count, and move the file into place."""
        if self._closed:
            return
        try:
            index = bytearray(_INDEX_HEAD.pack(INDEX_MAGIC, len(self.index)))
            for e in self.index:
                index += _compact_head(e.frame_type, e.n_splats, e.payload_length)
            self._file.write(index)
            self._file.write(_TRAILER.pack(self._offset, zlib.crc32(index), TRAILER_MAGIC))
            self.header.frame_count = len(self.index)
            header_bytes = self.header.to_bytes()
            if len(header_bytes) != len(self._header_bytes):  # cannot happen: only a u32 changed
                raise GsvcError(f"{self.path}: header size changed while writing")
            self._file.seek(0)
            self._file.write(header_bytes)
            self._file.flush()
            os.fsync(self._file.fileno())
        except BaseException:
            self._closed = True
            self._stack.__exit__(*sys.exc_info())
            raise
        self._closed = True
        self._stack.close()

    def abort(self) -> None:
        """Discard everything: remove the temp file, leave the target untouched."""
        if not self._closed:
            self._closed = True
            self._stack.__exit__(_Aborted, _Aborted(), None)

    def __enter__(self) -> GsvcWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Aborted(Exception):
    """Raised into the atomic-output context to make it discard the temp file."""


# ----------------------------------------------------------------------------------------------
# reading


def _parse_header(data: bytes, name: str) -> tuple[FileHeader, int]:
    """The header and its size in bytes (which may exceed what we write, for newer minors)."""
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise FormatError(f"{name}: not a .gsvc file (bad magic)")
    if len(data) < _HEADER_FIXED.size + _CRC.size:
        raise FormatError(f"{name}: truncated file header")
    (_, major, minor, size, width, height, fps_num, fps_den, frame_count, space, matrix, rng, _,
     kv_count) = _HEADER_FIXED.unpack_from(data)
    if major not in READABLE_MAJORS:
        raise FormatError(f"{name}: format version {major}.{minor} is not supported "
                          f"(this gsvc reads {' and '.join(f'{m}.x' for m in READABLE_MAJORS)})")
    if size > len(data) or size < _HEADER_FIXED.size + _CRC.size:
        raise FormatError(f"{name}: truncated file header")
    (crc,) = _CRC.unpack_from(data, size - _CRC.size)
    if zlib.crc32(data[:size - _CRC.size]) != crc:
        raise FormatError(f"{name}: file header fails its checksum (corrupt header)")
    params: dict[str, str] = {}
    pos = _HEADER_FIXED.size
    try:
        for _ in range(kv_count):
            klen = data[pos]
            key = data[pos + 1:pos + 1 + klen].decode()
            pos += 1 + klen
            (vlen,) = struct.unpack_from("<H", data, pos)
            value = data[pos + 2:pos + 2 + vlen].decode()
            pos += 2 + vlen
            params[key] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise FormatError(f"{name}: bad coding-parameter block in the header") from exc
    if pos > size - _CRC.size:
        raise FormatError(f"{name}: bad coding-parameter block in the header")
    if space >= len(COLOUR_SPACES) or matrix >= len(MATRICES) or rng >= len(RANGES):
        raise FormatError(f"{name}: unknown colour description ({space}, {matrix}, {rng})")
    header = FileHeader(width, height, fps_num, fps_den, COLOUR_SPACES[space], MATRICES[matrix],
                        RANGES[rng], params, frame_count, (major, minor))
    return header, size


class GsvcReader:
    """Reads a .gsvc file: header, index and trailer on open; payloads on demand.

    Strict by default: a missing trailer, a bad index or a bad record raises FormatError naming the
    file (and the frame). With ignore_errors=True a damaged index is rebuilt by scanning records
    from the header on, and `frames()` yields None for frames that fail; `bad_frames` lists them.
    """

    def __init__(self, path: str | os.PathLike[str], ignore_errors: bool = False) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.ignore_errors = ignore_errors
        self.bad_frames: list[int] = []
        self.index_problem: str | None = None
        try:
            self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115
        except FileNotFoundError as exc:
            raise InputError(f"{self.name}: no such file") from exc
        except OSError as exc:
            raise InputError(f"{self.name}: cannot open ({exc.strerror})") from exc
        try:
            self.file_size = os.fstat(self._file.fileno()).st_size
            self.header, self.header_size = self._read_header()
            try:
                self.index = self._read_index()
            except FormatError as exc:
                if not ignore_errors:
                    raise
                self.index_problem = str(exc)
                self.index = self._scan_records()
        except BaseException:
            self._file.close()
            raise

    # -- opening ------------------------------------------------------------------------------

    def _read_at(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    def _read_header(self) -> tuple[FileHeader, int]:
        head = self._read_at(0, _HEADER_FIXED.size)
        if len(head) >= len(MAGIC) and head[:len(MAGIC)] != MAGIC:
            raise FormatError(f"{self.name}: not a .gsvc file (bad magic)")
        if len(head) < _HEADER_FIXED.size:
            raise FormatError(f"{self.name}: truncated (shorter than a file header)")
        (size,) = struct.unpack_from("<I", head, 12)
        return _parse_header(self._read_at(0, min(size, 1 << 24)), self.name)

    def _read_index(self) -> list[IndexEntry]:
        if self.file_size < _TRAILER.size:
            raise FormatError(f"{self.name}: truncated (no trailer)")
        index_offset, index_crc, magic = _TRAILER.unpack(self._read_at(self.file_size - _TRAILER.size,
                                                                       _TRAILER.size))
        if magic != TRAILER_MAGIC:
            raise FormatError(f"{self.name}: truncated or unfinished file (no trailer)")
        end = self.file_size - _TRAILER.size
        if not self.header_size <= index_offset <= end - _INDEX_HEAD.size:
            raise FormatError(f"{self.name}: trailer points outside the file")
        data = self._read_at(index_offset, end - index_offset)
        if zlib.crc32(data) != index_crc:
            raise FormatError(f"{self.name}: frame index fails its checksum")
        magic, count = _INDEX_HEAD.unpack_from(data)
        if magic != INDEX_MAGIC:
            raise FormatError(f"{self.name}: malformed frame index")
        if count != self.header.frame_count:
            raise FormatError(f"{self.name}: index lists {count} frames, header says "
                              f"{self.header.frame_count}")
        if self.header.version[0] < COMPACT_MAJOR:
            return self._legacy_index(data, count, index_offset)
        entries = []
        reader, offset = ByteReader(data, self.name), self.header_size
        reader.pos = _INDEX_HEAD.size
        for k in range(count):
            start = reader.pos
            try:
                ftype, n_splats, length = _read_compact_head(reader)
            except FormatError as exc:
                raise FormatError(f"{self.name}: malformed frame index (entry {k})") from exc
            entries.append(IndexEntry(offset, ftype, n_splats, length, reader.pos - start))
            offset += entries[-1].record_length
            if offset > index_offset:
                raise FormatError(f"{self.name}: malformed frame index (entry {k})")
        if reader.pos != len(data) or offset != index_offset:  # records fill the span up to the index
            raise FormatError(f"{self.name}: malformed frame index")
        return entries

    def _legacy_index(self, data: bytes, count: int, index_offset: int) -> list[IndexEntry]:
        """Formats 3-9: fixed 20-byte entries with their records' offsets."""
        if len(data) != _INDEX_HEAD.size + count * _LEGACY_INDEX_ENTRY.size:
            raise FormatError(f"{self.name}: malformed frame index")
        entries = []
        for k in range(count):
            offset, length, n_splats, ftype = _LEGACY_INDEX_ENTRY.unpack_from(
                data, _INDEX_HEAD.size + k * _LEGACY_INDEX_ENTRY.size)
            entry = IndexEntry(offset, ftype.decode("latin-1"), n_splats, length, _LEGACY_RECORD_HEAD.size)
            if (entry.frame_type not in FRAME_TYPES or offset < self.header_size
                    or offset + entry.record_length > index_offset):
                raise FormatError(f"{self.name}: malformed frame index (entry {k})")
            entries.append(entry)
        return entries

    def _scan_records(self) -> list[IndexEntry]:
        """Index rebuilt from the records themselves, stopping at the first unreadable one."""
        entries: list[IndexEntry] = []
        offset = self.header_size
        while len(entries) < self.header.frame_count or self.header.frame_count == 0:
            try:
                entries.append(self._check_record(len(entries), offset, None)[0])
            except FormatError:
                break
            offset += entries[-1].record_length
        expected = max(self.header.frame_count, len(entries))
        self.bad_frames = list(range(len(entries), expected))
        return entries

    # -- records ------------------------------------------------------------------------------

    def _record_head(self, where: str, offset: int) -> tuple[IndexEntry, bytes]:
        """The record head at `offset` as an IndexEntry, and its bytes (the CRC covers them)."""
        if self.header.version[0] < COMPACT_MAJOR:
            head = self._read_at(offset, _LEGACY_RECORD_HEAD.size)
            if len(head) < _LEGACY_RECORD_HEAD.size:
                raise FormatError(f"{where}: truncated record")
            magic, ftype, n_splats, length = _LEGACY_RECORD_HEAD.unpack(head)
            if magic != RECORD_MAGIC or ftype.decode("latin-1") not in FRAME_TYPES:
                raise FormatError(f"{where}: corrupt record header")
            return IndexEntry(offset, ftype.decode(), n_splats, length, len(head)), head
        data = self._read_at(offset, 1 + 2 * _MAX_VARINT_BYTES)
        reader = ByteReader(data, where)
        try:
            ftype, n_splats, length = _read_compact_head(reader)
        except FormatError as exc:
            raise FormatError(f"{where}: {'truncated record' if len(data) < 3 else 'corrupt record header'}"
                              ) from exc
        return IndexEntry(offset, ftype, n_splats, length, reader.pos), data[:reader.pos]

    def _check_record(self, k: int, offset: int, expected: IndexEntry | None) -> tuple[IndexEntry, bytes]:
        where = f"{self.name}: frame {k}"
        entry, head = self._record_head(where, offset)
        if expected is not None and entry != expected:
            raise FormatError(f"{where}: record does not match the index (corrupt record header)")
        length = entry.payload_length
        rest = self._read_at(offset + entry.head_size, length + _CRC.size)
        if len(rest) < length + _CRC.size:
            raise FormatError(f"{where}: truncated record")
        payload = rest[:length]
        (crc,) = _CRC.unpack_from(rest, length)
        if zlib.crc32(payload, zlib.crc32(head)) != crc:
            raise FormatError(f"{where}: checksum mismatch (corrupt frame record)")
        return entry, payload

    def __len__(self) -> int:
        return max(len(self.index), self.header.frame_count if self.ignore_errors else 0)

    def read_frame(self, k: int) -> FrameRecord:
        """Frame k's record, its CRC checked. FormatError names the file and frame k."""
        if not 0 <= k < len(self.index):
            if k in self.bad_frames:
                raise FormatError(f"{self.name}: frame {k}: missing or unreadable (file damaged)")
            raise UsageError(f"{self.name}: no frame {k} (the file has {len(self.index)})")
        entry, payload = self._check_record(k, self.index[k].offset, self.index[k])
        return FrameRecord(k, entry.frame_type, entry.n_splats, entry.offset, payload)

    def frames(self, start: int = 0) -> Iterator[tuple[int, FrameRecord | None]]:
        """(k, record) for k = start, start+1, ...; bad frames raise, or give None when ignoring."""
        for k in range(start, len(self)):
            try:
                yield k, self.read_frame(k)
            except FormatError:
                if not self.ignore_errors:
                    raise
                if k not in self.bad_frames:
                    self.bad_frames.append(k)
                yield k, None

    def gop_start(self, k: int) -> int:
        """The nearest I-frame at or before frame k (where decoding frame k must start)."""
        if not 0 <= k < len(self.index):
            raise UsageError(f"{self.name}: no frame {k} (the file has {len(self.index)})")
        while k > 0 and self.index[k].frame_type != "I":
            k -= 1
        return k

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> GsvcReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

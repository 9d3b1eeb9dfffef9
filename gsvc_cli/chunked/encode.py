"""Chunked encoding: plan chunks, encode each as a closed sequence anywhere, join them in order.

Chunking sits outside the encoder: `encode_chunk` runs the ordinary encoder
(`codec.encoder.gop.encode_frames`) over one chunk's frames and knows nothing about workers; a
runner (`SerialRunner` here, `gsvc_cli.parallel.ray_runtime.RayRunner` for Ray) decides where
chunks run; `encode_chunked` plans, keeps finished chunks in the work folder (`chunked.parts`),
and writes the .gsvc in frame order. Every chunk is encoded with one compute thread, wherever it
runs (torch's reductions give different last bits with other thread counts), so the file is
byte-identical for any number of workers, and a resumed encode equals an uninterrupted one.

Rate control: --quality (one lambda), --psnr and --splats hold per frame, so per chunk: every
chunk gets the same `EncoderSettings`. --bpp gives every chunk the same bits per pixel over its own
frames, minus its share of the file's header, index and trailer (see `plan.plan_chunks`), through
the encoder's single-pass frame-budget controller (not the whole-file search over --quality that an
unchunked --bpp encode runs), so the whole file still lands on the target.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

from gsvc_cli import __version__
from gsvc_cli.atomic import check_output_path, signals_raise
from gsvc_cli.chunked.parts import ChunkResult, WorkFolder, fingerprint
from gsvc_cli.chunked.plan import CUT_DETECTOR, Chunk, ChunkPlan, detect_cuts, plan_chunks
from gsvc_cli.codec.bitstream.container import FORMAT_MAJOR, FORMAT_MINOR, GsvcWriter
from gsvc_cli.codec.encoder.gop import (
    ENCODER_NAME,
    EncoderSettings,
    EncodeSummary,
    FrameReport,
    encode_frames,
    file_header,
    file_overhead,
)
from gsvc_cli.errors import GsvcError, InputError
from gsvc_cli.progress import ProgressCallback, report
from gsvc_cli.video import Frame, VideoInfo, open_video

FAULT_ENV = "GSVC_TEST_FAULT_CHUNK"
"""Testing hook: "K" makes chunk K raise every time; "K:crash:PATH" makes the process running
chunk K exit abruptly the first time (PATH marks that it happened), as a lost worker would."""


class ChunkFailed(GsvcError):
    """A chunk failed on its retry too: the encode stops (finished chunks stay in the work folder)."""


@dataclass(frozen=True)
class SourceSpec:
    """How to open the input again, from any process: path, reader options and what it was.

    start: the encode's first frame in the file. size/mtime_ns: the file as planned, so a worker
    refuses a file that changed (or a different file under the same path on another machine).
    """

    path: str
    start: int = 0
    size_wh: tuple[int, int] | None = None
    fps: Fraction | None = None
    pix_fmt: str | None = None
    file_size: int = 0
    mtime_ns: int = 0

    @classmethod
    def of(cls, path: Path, start: int, size_wh: tuple[int, int] | None, fps: Fraction | None,
           pix_fmt: str | None) -> SourceSpec:
        st = Path(path).stat()
        return cls(str(Path(path).resolve()), start, size_wh, fps, pix_fmt, st.st_size, st.st_mtime_ns)

    def visible(self) -> bool:
        """True when this process sees the same file (same size and mtime) under the path."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return st.st_size == self.file_size and st.st_mtime_ns == self.mtime_ns

    def open(self, offset: int = 0, count: int | None = None):  # -> VideoReader
        """Frames [offset, offset + count) of the encode."""
        return open_video(self.path, size=self.size_wh, fps=self.fps, pix_fmt=self.pix_fmt,
                          start=self.start + offset, frames=count)


@dataclass
class ChunkJob:
    """Everything a worker needs to encode one chunk: read frames from `source`, or use `frames`."""

    chunk: Chunk
    info: VideoInfo
    settings: EncoderSettings
    source: SourceSpec
    frames: list[Frame] | None = None


def _test_fault(chunk: Chunk) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    index, _, rest = spec.partition(":")
    if int(index) != chunk.index:
        return
    if rest.startswith("crash:"):
        marker = Path(rest[len("crash:"):])
        if not marker.exists():
            marker.touch()
            os._exit(1)  # no cleanup, no exception: what a killed worker looks like
        return
    raise RuntimeError(f"injected fault ({FAULT_ENV})")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread for the block: the same bits in every worker and in-process."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encode_chunk(job: ChunkJob, progress: ProgressCallback | None = None) -> ChunkResult:
    """Encode one chunk (the body of a worker's task). Raises InputError for unreadable input."""
    _test_fault(job.chunk)
    start = time.perf_counter()
    chunk = job.chunk
    records: list[tuple[str, int, bytes]] = []
    reports: list[FrameReport] = []
    with contextlib.ExitStack() as stack:
        frames: Iterable[Frame]
        if job.frames is not None:
            frames = job.frames
        else:
            if not job.source.visible():
                raise InputError(f"{job.source.path}: changed or not visible where {chunk.name} runs")
            frames = stack.enter_context(job.source.open(chunk.start, chunk.count))
        stack.enter_context(one_thread())
        for _, coded, rep, _ in encode_frames(frames, job.info, job.settings, frame_count=chunk.count,
                                              overhead_bytes=chunk.overhead_bytes,
                                              first_index=chunk.start, progress=progress):
            records.append((coded.frame_type, rep.n_splats, coded.payload))
            reports.append(rep)
    if len(records) != chunk.count:
        raise InputError(f"{job.source.path}: {chunk.name}: the input ended after {len(records)} frames")
    return ChunkResult(chunk, records, reports, time.perf_counter() - start)


class JobMaker:
    """Makes jobs for chunks in frame order; with `ship`, reads their frames here (sequentially,
    one chunk at a time) for workers that cannot see the input."""

    def __init__(self, info: VideoInfo, settings: EncoderSettings, source: SourceSpec) -> None:
        self.info, self.settings, self.source = info, settings, source
        self._stack = contextlib.ExitStack()
        self._frames: Iterator[Frame] | None = None
        self._position = 0

    def job(self, chunk: Chunk, ship: bool) -> ChunkJob:
        if not ship:
            return ChunkJob(chunk, self.info, self.settings, self.source)
        if self._frames is None or chunk.start < self._position:
            self._stack.close()
            self._frames = iter(self._stack.enter_context(self.source.open(chunk.start)))
            self._position = chunk.start
        while self._position < chunk.start:
            next(self._frames)
            self._position += 1
        frames = [f for _, f in zip(range(chunk.count), self._frames, strict=False)]
        self._position += len(frames)
        return ChunkJob(chunk, self.info, self.settings, self.source, frames)

    def close(self) -> None:
        self._stack.close()


class ChunkRunner(Protocol):
    """Runs chunk jobs somewhere; yields results as they finish (any order)."""

    description: str

    def run(self, chunks: list[Chunk], make_job: Callable[[Chunk, bool], ChunkJob]
            ) -> Iterator[ChunkResult]: ...


class SerialRunner:
    """Every chunk in this process, one after another (one thread, as a worker would). A chunk
    that raises is tried once more, as Ray retries a task; input errors are not retried."""

    description = "serial, in-process"

    def __init__(self, progress: ProgressCallback | None = None) -> None:
        self.progress = progress

    def run(self, chunks: list[Chunk], make_job: Callable[[Chunk, bool], ChunkJob]
            ) -> Iterator[ChunkResult]:
        for chunk in chunks:
            for attempt in (1, 2):
                try:
                    result = encode_chunk(make_job(chunk, False), self.progress)
                    break
                except GsvcError:
                    raise
                except Exception as exc:
                    if attempt == 2:
                        raise ChunkFailed(f"{chunk.name} failed twice: {type(exc).__name__}: {exc}") from exc
            yield result


@dataclass
class ChunkedSummary(EncodeSummary):
    """An encode summary plus how it was chunked and run."""

    chunks: int = 0
    resumed: int = 0
    cuts: list[int] = field(default_factory=list)
    runner: str = ""
    chunk_seconds: list[float] = field(default_factory=list)


def encode_chunked(source: SourceSpec, info: VideoInfo, output: Path, settings: EncoderSettings,
                   runner: ChunkRunner, *, frame_count: int | None = None, resume: bool = False,
                   overwrite: bool = False, progress: ProgressCallback | None = None) -> ChunkedSummary:
    """Encode `source` into `output` in chunks run by `runner`, keeping finished chunks in the
    work folder until the file is complete (see `chunked.parts`). With `resume`, chunks that a
    previous run of the same encode finished are reused. `frame_count`: frames to encode at most
    (None: to the end). SIGTERM/SIGHUP/Ctrl-C leave the work folder and nothing else."""
    start_time = time.perf_counter()
    check_output_path(output, overwrite)
    with signals_raise():
        header = file_header(info, settings)
        key = fingerprint({
            "gsvc": __version__, "encoder": ENCODER_NAME, "format": [FORMAT_MAJOR, FORMAT_MINOR],
            "source": [source.path, source.file_size, source.mtime_ns, source.start, source.size_wh,
                       str(source.fps), source.pix_fmt, frame_count],
            "settings": [settings.target.describe(), settings.preset, settings.gop,
                         settings.scenecut_db, settings.seed],
            "header": header.to_bytes().hex(), "detector": CUT_DETECTOR,
        })
        work = WorkFolder(output)
        plan = work.load_plan(key) if resume else None
        if plan is None:
            with source.open(0, frame_count) as reader:
                cuts, count = detect_cuts(reader, progress, frame_count or info.frame_count)
            if count == 0:
                raise InputError(f"{source.path}: no frames to encode")
            plan = plan_chunks(count, cuts, settings.gop, file_overhead(header, count))
        stamp = fingerprint({"key": key, "plan": plan.to_json()})
        work.prepare(key, plan, resume, overwrite)
        done = [c for c in plan.chunks if resume and work.is_done(c, stamp)]
        pending = [c for c in plan.chunks if c not in done]
        frames_done = sum(c.count for c in done)
        report(progress, "encode", frames_done, plan.frame_count, chunks=f"{len(done)}/{len(plan.chunks)}")
        maker = JobMaker(info, settings, source)
        try:
            finished = len(done)
            for result in runner.run(pending, maker.job):
                work.store(result, stamp)
                finished += 1
                frames_done += result.chunk.count
                report(progress, "encode", frames_done, plan.frame_count,
                       chunks=f"{finished}/{len(plan.chunks)}")
        finally:
            maker.close()
        summary = _assemble(work, stamp, plan, header, output, overwrite, info)
        work.remove()
    summary.seconds = time.perf_counter() - start_time
    summary.resumed = len(done)
    summary.runner = runner.description
    return summary


def _assemble(work: WorkFolder, stamp: str, plan: ChunkPlan, header, output: Path, overwrite: bool,
              info: VideoInfo) -> ChunkedSummary:
    """Write the .gsvc from the parts, in frame order (atomically, one payload in memory)."""
    reports: list[FrameReport] = []
    seconds: list[float] = []
    with GsvcWriter(output, header, overwrite=overwrite) as writer:
        for chunk in plan.chunks:
            try:
                for ftype, n_splats, payload in work.records(chunk, stamp):
                    writer.write_frame(ftype, n_splats, payload)
                chunk_reports, chunk_seconds = work.reports(chunk, stamp)
            except (OSError, ValueError) as exc:
                raise InputError(f"{work.path}: {chunk.name} is missing or damaged ({exc})",
                                 hint="run again with --resume to re-encode it") from exc
            reports.extend(chunk_reports)
            seconds.append(chunk_seconds)
    return ChunkedSummary(Path(output), info.width, info.height, reports, Path(output).stat().st_size,
                          0.0, chunks=len(plan.chunks), cuts=list(plan.cuts), chunk_seconds=seconds)

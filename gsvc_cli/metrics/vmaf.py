"""VMAF through libvmaf in the imageio-ffmpeg binary, fed our decoded frames through pipes.

The frames we already decoded for PSNR/MS-SSIM are streamed as Y4M into a parallel ffmpeg
process (one pipe per input, one writer thread per pipe), so nothing is decoded twice and
VMAF runs alongside the torch metrics. Per-frame scores come from libvmaf's JSON log.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from gsvc_cli.errors import GsvcError
from gsvc_cli.video.frame import Frame
from gsvc_cli.video.info import VideoInfo
from gsvc_cli.video.y4m import y4m_header

VMAF_MODEL = "vmaf_v0.6.1"
_QUEUE_FRAMES = 4


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg (built with libvmaf)."""
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a declared dependency
        raise GsvcError("VMAF needs the imageio-ffmpeg package (pip install imageio-ffmpeg)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


class _PipeFeeder(threading.Thread):
    """Writes a Y4M header, then each queued frame, to one pipe; None closes it."""

    def __init__(self, fd: int, header: bytes) -> None:
        super().__init__(daemon=True)
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_FRAMES)
        self._fd = fd
        self._header = header
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # buffered: a raw pipe write may be partial (e.g. interrupted by a signal) and would
            # silently corrupt the Y4M stream; BufferedWriter.write always writes everything
            with os.fdopen(self._fd, "wb") as pipe:
                pipe.write(self._header)
                while (item := self.queue.get()) is not None:
                    pipe.write(b"FRAME\n")
                    pipe.write(item)
        except BaseException as exc:  # broken pipe when ffmpeg dies: reported by finish()
            self.error = exc
            while self.queue.get() is not None:  # drain so the producer never blocks
                pass


class VmafRunner:
    """Computes VMAF for frame pairs handed to `add`; `finish()` returns the per-frame scores.

    Start it with the VideoInfo both inputs are written as (same size and pix_fmt). Use as a
    context manager so the ffmpeg process is always reaped.
    """

    def __init__(self, info: VideoInfo, threads: int | None = None) -> None:
        self._tmpdir = tempfile.mkdtemp(prefix="gsvc-vmaf-")
        self._log = Path(self._tmpdir) / "vmaf.json"
        header = y4m_header(info)
        self._info = info
        dist_r, dist_w = os.pipe()
        ref_r, ref_w = os.pipe()
        threads = threads or os.cpu_count() or 1
        log_path = str(self._log).replace("\\", "/").replace(":", "\\:")
        graph = (f"[0:v][1:v]libvmaf=model=version={VMAF_MODEL}:log_fmt=json:"
                 f"log_path={log_path}:n_threads={threads}")
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
               "-f", "yuv4mpegpipe", "-i", f"pipe:{dist_r}",
               "-f", "yuv4mpegpipe", "-i", f"pipe:{ref_r}",
               "-lavfi", graph, "-f", "null", "-"]
        try:
            self._proc = subprocess.Popen(cmd, pass_fds=(dist_r, ref_r), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            for fd in (dist_r, dist_w, ref_r, ref_w):
                os.close(fd)
            raise GsvcError(f"cannot run ffmpeg for VMAF: {exc}") from None
        os.close(dist_r)
        os.close(ref_r)
        self._stderr: list[bytes] = []
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self._dist = _PipeFeeder(dist_w, header)
        self._ref = _PipeFeeder(ref_w, header)
        self._dist.start()
        self._ref.start()
        self._closed = False
        self.frames = 0

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line)

    def add(self, reference: Frame, distorted: Frame) -> None:
        """Queue one pair (converted to the runner's format by the caller); blocks when ffmpeg lags."""
        self._ref.queue.put(reference.tobytes())
        self._dist.queue.put(distorted.tobytes())
        self.frames += 1

    def _close_inputs(self) -> None:
        if not self._closed:
            self._closed = True
            self._ref.queue.put(None)
            self._dist.queue.put(None)
            self._ref.join()
            self._dist.join()

    def finish(self) -> list[float]:
        """Close the inputs, wait for ffmpeg, and return one VMAF score per frame added."""
        self._close_inputs()
        code = self._proc.wait()
        self._stderr_thread.join()
        if code != 0:
            message = b"".join(self._stderr).decode("utf-8", "replace").strip().splitlines()
            reason = message[-1] if message else f"exit code {code}"
            raise GsvcError(f"VMAF (ffmpeg libvmaf) failed: {reason}")
        try:
            log = json.loads(self._log.read_text())
            scores = [float(f["metrics"]["vmaf"]) for f in log["frames"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GsvcError(f"VMAF: cannot read libvmaf's log ({exc})") from None
        if len(scores) != self.frames:
            raise GsvcError(f"VMAF: libvmaf scored {len(scores)} frames, expected {self.frames}")
        return scores

    def close(self) -> None:
        """Stop ffmpeg if still running and remove the temp log."""
        if self._proc.poll() is None:
            self._proc.kill()
        with contextlib.suppress(Exception):
            self._close_inputs()
        self._proc.wait()
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> VmafRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

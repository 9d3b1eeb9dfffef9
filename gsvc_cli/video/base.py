"""The reader and writer interfaces every format implements."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType

from gsvc_cli.video.frame import Frame
from gsvc_cli.video.info import VideoInfo


class VideoReader:
    """Iterate to get Frames lazily (one at a time: memory stays bounded); `.info` describes them."""

    info: VideoInfo

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file; safe to call twice."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class VideoWriter:
    """Context manager: `.write(frame)` each frame; the output appears only if the block succeeds."""

    info: VideoInfo
    frames_written: int = 0

    def write(self, frame: Frame) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush and move the temp output into place."""
        raise NotImplementedError

    def _abort(self) -> None:
        """Remove every temp file; the target is untouched."""
        raise NotImplementedError

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self._finish()
            except BaseException:
                self._abort()
                raise
        else:
            self._abort()

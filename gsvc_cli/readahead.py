"""Run an iterator ahead of its consumer in a thread, so two stages of a pipeline overlap.

The decoder's use: entropy decoding of frame k+1 (Python and numpy) runs while frame k renders in
the C library, which releases the GIL; on two cores the serial Python stage then costs little
wall time. Items come out in order and unchanged, so results cannot depend on the overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_SECONDS = 0.1


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what `items` yields, computing up to `depth` items ahead in a daemon thread.

    An exception raised by `items` is raised here, at the item where it happened. When the consumer
    stops early (break, an exception, the generator closed), the thread stops at its next item.
    """
    slots: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[object, BaseException | None]) -> bool:
        """Put `entry` when there is room; False when the consumer has gone."""
        while not stop.is_set():
            try:
                slots.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
        except BaseException as error:  # handed to the consumer, re-raised there
            offer((_DONE, error))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator left early runs its cleanup here, in its own thread
                close()
        offer((_DONE, None))

    worker = threading.Thread(target=produce, name="gsvc-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()

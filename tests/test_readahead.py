"""read_ahead: the same items in the same order, errors where they happened, early stops clean."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from gsvc_cli.readahead import read_ahead


def test_items_come_out_in_order_and_unchanged() -> None:
    assert list(read_ahead(iter(range(100)))) == list(range(100))
    assert list(read_ahead(iter([]))) == []
    assert list(read_ahead(iter("abc"), depth=3)) == ["a", "b", "c"]


def test_an_error_is_raised_at_its_item() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad frame")

    seen = []
    with pytest.raises(ValueError, match="bad frame"):
        for item in read_ahead(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_stopping_early_stops_and_cleans_up_the_producer() -> None:
    produced = []
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            for k in range(1000):
                produced.append(k)
                yield k
        finally:
            closed.set()

    for item in read_ahead(items()):
        if item == 3:
            break
    assert closed.wait(5)
    assert len(produced) <= 3 + 1 + 2  # the consumed items, the queued one, the one in hand
    assert not [t for t in threading.enumerate() if t.name == "gsvc-read-ahead"]

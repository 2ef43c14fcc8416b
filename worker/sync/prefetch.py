"""Read the next page while this one is stored and written.

A CRM has separate budgets for reads and writes (HubSpot: search 5/s beside the 10-second
burst limit), so a tick that alternates "read a page, write its tasks" leaves one budget idle
at a time. One producer thread reads ahead by one page; memory stays at two pages.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

import structlog

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(source: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """Yield what `source` yields, producing the next item in a thread meanwhile."""
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    context = structlog.contextvars.get_contextvars()

    def produce() -> None:
        structlog.contextvars.bind_contextvars(**context)  # contextvars stay per thread
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            items.put(_Failure(exc))

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to put, then let it end
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.1)
            thread.join(timeout=0.1)

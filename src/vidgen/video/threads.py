"""Bounded producer/consumer threads so decode, compute and encode overlap without unbounded memory."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class BackgroundIterator(Generic[T]):
    """Runs `source` in a daemon thread, at most `maxsize` items ahead of the consumer.

    Errors raised by the producer are re-raised in the consumer; `close()` stops the producer early.
    """

    def __init__(self, source: Iterable[T], maxsize: int = 8) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True, name="vidgen-reader")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterable[T]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # handed to the consumer thread
            self._put(_Failure(error))

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class BackgroundWorker:
    """Calls `handle(item)` for each submitted item in one daemon thread, in order, with a bounded queue."""

    def __init__(self, handle: Callable[[Any], None], maxsize: int = 8, name: str = "vidgen-writer") -> None:
        self._handle = handle
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain without work after a failure
            try:
                self._handle(item)
            except BaseException as error:
                self._error = error

    def submit(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def finish(self) -> None:
        """Wait for every submitted item; re-raise the first error the worker hit."""
        self._queue.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

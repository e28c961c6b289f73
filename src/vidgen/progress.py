"""Progress: the library's one callback type, and the one bar every command draws it with.

`progress(done, total)` is called as work advances, with the units done so far (output frames, denoising
steps, videos, bytes) and the total when it is known (None otherwise).

`progress_bar(label, unit=...)` is the bar behind it: a rich bar on stderr, drawn only on a terminal and
when `enabled` (a command's `--quiet` turns it off, and with it every bar opened inside, such as a model's
first download). A bar opened while another is on screen becomes a second line of it, so a download during
`vidgen interpolate` does not fight the frame bar for the terminal. Frames show `done/total frames`, their
rate in fps and the time left; bytes show the amount and the transfer rate (`vidgen models fetch`); an
unknown total pulses and shows the time elapsed (a live input, a download with no length).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

ProgressCallback = Callable[[int, int | None], None]

BYTES = "bytes"  # the unit of downloads: amounts and rates in kB/MB

T = TypeVar("T")

_lock = threading.Lock()
_shown: list[Any] = []  # the rich Progress on screen (at most one); nested bars add a task to it
_silenced = [0]  # > 0 while a bar that was turned off (--quiet) is open: bars opened inside stay off too


@contextlib.contextmanager
def progress_bar(label: str, *, unit: str = "frames", enabled: bool = True,
                 console: Any = None) -> Iterator[ProgressCallback | None]:
    """Yield the `progress(done, total)` callback of a bar labelled `label`, or None when nothing is drawn
    (not `enabled`, inside a bar that was not, or stderr (`console`'s file) is not a terminal). The bar is
    gone when the block ends (transient): what a command prints after it stands alone."""
    if not enabled:
        with _lock:
            _silenced[0] += 1
        try:
            yield None
        finally:
            with _lock:
                _silenced[0] -= 1
        return
    with _lock:
        outer = _shown[0] if _shown else None
        silenced = _silenced[0] > 0
    if silenced:
        yield None
        return
    if outer is not None:  # a second line of the bar on screen
        task = outer.add_task(label, total=None, unit=unit)
        try:
            yield _updater(outer, task)
        finally:
            outer.remove_task(task)
        return
    console = console if console is not None else _stderr_console()
    if not console.is_terminal:
        yield None
        return
    bar = _new_progress(console)
    task = bar.add_task(label, total=None, unit=unit)
    with _lock:
        _shown.append(bar)
    bar.start()
    try:
        yield _updater(bar, task)
    finally:
        bar.stop()
        with _lock:
            _shown.remove(bar)


def counting(items: Iterable[T], progress: ProgressCallback | None, total: int | None = None,
             start: int = 0) -> Iterator[T]:
    """`items`, reporting `progress(start + n, total)` after the n-th (for loops over frames)."""
    done = start
    for item in items:
        yield item
        done += 1
        if progress is not None:
            progress(done, total)


def known_total(*bounds: int | None) -> int | None:
    """The smallest of the bounds that are known (a container's frame count, --max-frames), or None."""
    known = [bound for bound in bounds if bound]
    return min(known) if known else None


def _updater(bar: Any, task: Any) -> ProgressCallback:
    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    return update


_console_cache: list[Any] = []


def _stderr_console() -> Any:
    """The console of bars opened without one (the library's own, such as downloads): stderr."""
    if not _console_cache:
        from rich.console import Console

        _console_cache.append(Console(stderr=True))
    return _console_cache[0]


def _new_progress(console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.text import Text

    class Amount(ProgressColumn):
        """`done/total unit` (or `done unit` with no total); bytes as sizes; nothing before the first unit."""

        def __init__(self) -> None:
            super().__init__()
            self._bytes = DownloadColumn()

        def render(self, task: Any) -> Any:
            unit = task.fields.get("unit", "")
            if unit == BYTES:
                return self._bytes.render(task)
            done = int(task.completed)
            if task.total is None:
                return Text(f"{done} {unit}".rstrip() if done else "")
            return Text(f"{done}/{int(task.total)} {unit}".rstrip())

    class Rate(ProgressColumn):
        """Units per second since the start (fps for frames); bytes per second for downloads."""

        def __init__(self) -> None:
            super().__init__()
            self._bytes = TransferSpeedColumn()

        def render(self, task: Any) -> Any:
            unit = task.fields.get("unit", "")
            if unit == BYTES:
                return self._bytes.render(task)
            elapsed = task.elapsed or 0.0
            if not task.completed or not elapsed or not unit:
                return Text("")
            rate = task.completed / elapsed
            return Text(f"{rate:.1f} fps" if unit == "frames" else f"{rate:.2f} {unit}/s")

    class Time(ProgressColumn):
        """The time left when the total is known, else the time elapsed."""

        def __init__(self) -> None:
            super().__init__()
            self._left, self._spent = TimeRemainingColumn(), TimeElapsedColumn()

        def render(self, task: Any) -> Any:
            return (self._spent if task.total is None else self._left).render(task)

    # stdout is routed through the bar only when it is a terminal too (lines printed there would break it);
    # piped or redirected, JSON records and video go there untouched
    return Progress(TextColumn("{task.description}"), BarColumn(), Amount(), Rate(), Time(), console=console,
                    transient=True, redirect_stdout=_is_terminal(sys.stdout))


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or replaced streams
        return False


__all__ = ["BYTES", "ProgressCallback", "counting", "known_total", "progress_bar"]

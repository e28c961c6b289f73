"""Drop repeated frames (animation drawn on twos/threes, duplicated frames in conversions) before timing.

A kept frame keeps its timestamp, so the timeline interpolates across the gap at the true instants:
A A B B C C becomes A . B . C . with the dots rebuilt, and motion is smooth instead of stop-and-go.
Only short runs are dropped: a run longer than `max_run` repeats is a still shot, kept as it is
(otherwise a pause would turn into slow creeping motion). The last frame is always kept, so the
duration does not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

DEFAULT_DEDUP_THRESHOLD = 0.6  # mean absolute luma difference (0-255) on thumbnails
DEFAULT_MAX_RUN = 3


class _HasThumb(Protocol):
    thumb: np.ndarray | None


def duplicate_score(thumb0: np.ndarray, thumb1: np.ndarray) -> float:
    """Mean absolute difference of the thumbnails' brightness channel: compression noise stays well below 1."""
    return float(np.abs(thumb0[..., 2] - thumb1[..., 2]).mean())


@dataclass(frozen=True)
class Deduplicator:
    threshold: float = DEFAULT_DEDUP_THRESHOLD
    max_run: int = DEFAULT_MAX_RUN

    def filter(self, sources: Iterator[Any]) -> Iterator[Any]:
        """Yield sources without short runs of repeats (each source needs a `thumb`)."""
        kept: Any = None
        run: list[Any] = []
        for source in sources:
            if kept is not None and duplicate_score(kept.thumb, source.thumb) <= self.threshold:
                run.append(source)
                continue
            if len(run) > self.max_run:
                yield from run  # a still shot: keep it
            run = []
            kept = source
            yield source
        if len(run) > self.max_run:
            yield from run
        elif run:
            yield run[-1]  # the end of the video stays where it was

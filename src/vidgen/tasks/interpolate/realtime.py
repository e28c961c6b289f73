"""`--realtime`: pace to the input clock, keep latency bounded by degrading, and measure it.

- **Pacing** (`pace`, in the reader thread): a source frame is released no earlier than its own time after
  the first frame (the input clock), so a file plays like a live input; a live input that comes late is
  followed, and a gap of more than MAX_WAIT seconds is not waited for. A frame's *arrival* is its instant
  on that clock: when vidgen itself falls behind and the input waits in a pipe or socket, that wait
  counts (see `pace`).
- **Degrading** (`Degrader`): the rungs of a ladder from the requested model down to repeating source
  frames, for example RIFE at flow scale 1, 0.5 and 0.25, the classical `fast` model, then `repeat`.
  Before the run each rung is timed on one pair (`RealtimeRunner.calibrate`) and the run starts on the
  best rung that fits the frame interval. Before each pair the lag (now minus the arrival of the frame
  the pair waits for) decides: above STEP_DOWN_INTERVALS frame intervals while the rung's cost does not
  fit (the lag would not drain), or above BEHIND_INTERVALS whatever the cost (a short stall drains
  without degrading), one rung down (at most once per HOLD seconds); above PANIC_INTERVALS, this pair is
  repeated outright to catch up; calm (lag below
  half an interval) for RECOVER seconds and the rung above fits (never measured, or lately or at its best
  cheap enough: a rung that was slow only while the machine was busy is tried again), one rung up. A
  relapse soon after a recovery doubles the wait before the next one (up to MAX_RECOVER seconds).
- **Latency** (`LatencyTracker`): for every output frame, the time from the arrival of the newest source
  frame it depends on (the one it shows, or for an interpolated frame the later of its two) to the
  moment the writer has muxed it, kept in a fixed histogram (`LatencyHistogram`: p50/p95 to within
  HISTOGRAM_RATIO, the maximum exactly). Nothing here grows with the length of the run.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Protocol

MAX_WAIT = 1.0  # seconds: a longer gap in the input's timestamps is a discontinuity, not waited for
SLACK = 0.005  # seconds of lateness that count as on time
STEP_DOWN_INTERVALS = 2.0  # lag, in source frame intervals, that steps one rung down when the rung's cost does not fit
BEHIND_INTERVALS = 4.0  # lag that steps one rung down even when the rung's cost fits
PANIC_INTERVALS = 5.0  # lag beyond which a pair is repeated to catch up at once
FIT = 0.9  # a rung fits when one pair costs at most this share of the frame interval (the rest: decoding, encoding)
HOLD = 0.5  # seconds between two steps down (the first step needs time to show its effect)
RECOVER = 2.0  # seconds of calm before stepping up
MAX_RECOVER = 60.0
RELAPSE = 5.0  # seconds: a step down this soon after a step up counts as a relapse
COST_SMOOTHING = 0.2  # weight of the newest measurement in a rung's cost
HISTOGRAM_MIN, HISTOGRAM_MAX, HISTOGRAM_RATIO = 1e-4, 1e4, 1.02  # seconds; bin width as a ratio


class _Pair(Protocol):
    first: Any
    second: Any
    slots: Sequence[Any]

    def times(self) -> tuple[Fraction, ...]: ...


@dataclass(frozen=True)
class Rung:
    """One setting of the ladder: a name for reports and the engine it runs (None: repeat source frames);
    with `every` n > 1, the engine makes one pair in n and the others repeat source frames."""

    name: str
    engine: Any | None
    every: int = 1


class LatencyHistogram:
    """Latencies in log-spaced bins: constant memory however long the run, percentiles within one bin."""

    def __init__(self) -> None:
        self.bins = [0] * (math.ceil(math.log(HISTOGRAM_MAX / HISTOGRAM_MIN) / math.log(HISTOGRAM_RATIO)) + 1)
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        index = 0 if seconds <= HISTOGRAM_MIN else int(math.log(seconds / HISTOGRAM_MIN) / math.log(HISTOGRAM_RATIO))
        self.bins[min(index, len(self.bins) - 1)] += 1
        self.count += 1
        self.max = max(self.max, seconds)

    def percentile(self, share: float) -> float | None:
        """The latency below which `share` of the frames fall (the geometric middle of its bin), or None."""
        if not self.count:
            return None
        wanted = max(1, math.ceil(share * self.count))
        seen = 0
        for index, count in enumerate(self.bins):
            seen += count
            if seen >= wanted:
                middle = HISTOGRAM_MIN * HISTOGRAM_RATIO ** (index + 0.5)
                return min(middle, self.max)
        return self.max


class LatencyTracker:
    """Arrival times of source frames and the latency of each output frame (see the module notes).

    `arrived` is called from the reader thread, `expect` and `forget` from the loop, `muxed` from the
    writer thread; each touches its own keys of small dicts that are emptied as frames go out.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.histogram = LatencyHistogram()
        self._arrivals: dict[int, float] = {}
        self._waiting: dict[int, float] = {}

    def arrived(self, source_index: int, when: float) -> None:
        self._arrivals[source_index] = when

    def arrival(self, source_index: int) -> float | None:
        return self._arrivals.get(source_index)

    def expect(self, output_index: int, source_index: int) -> None:
        """Output frame `output_index` (about to be written) depends on source frame `source_index`."""
        arrival = self._arrivals.get(source_index)
        if arrival is not None:
            self._waiting[output_index] = arrival

    def forget(self, source_index: int) -> None:
        """No later output frame depends on this source frame, nor on any before it (frames dropped as
        duplicates included)."""
        for index in [index for index in list(self._arrivals) if index <= source_index]:  # list(): one step
            self._arrivals.pop(index, None)

    def muxed(self, output_index: int) -> None:
        arrival = self._waiting.pop(output_index, None)
        if arrival is not None:
            self.histogram.add(self.clock() - arrival)

    @property
    def pending(self) -> int:
        """Entries held (bounded by the frames in flight): for tests of flat memory."""
        return len(self._arrivals) + len(self._waiting)


def pace(frames: Iterator[Any], tracker: LatencyTracker, *, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Iterator[Any]:
    """Release source frames (each with `index` and `time` in seconds) at the input clock; record arrivals.

    A frame read before its time waits for it. One read late is late either because this process was
    busy (the consumer left the queue full, and the input waited in the pipe or socket meanwhile): then
    its arrival stays on the input clock and the wait counts as latency; or because the input itself
    came late: then the clock moves on with it. A gap of more than MAX_WAIT, or time going backwards,
    restarts the clock.
    """
    origin: float | None = None  # wall-clock instant of the input's time zero
    last_time: Fraction | None = None
    blocked = 0.0  # time spent waiting on the consumer that the clock has not caught up with yet
    for frame in frames:
        now = clock()
        step = float(frame.time - last_time) if last_time is not None else None
        if origin is None or step is None or not 0 < step <= MAX_WAIT:
            origin, blocked = now - float(frame.time), 0.0
        due = origin + float(frame.time)
        late = now - due
        if late <= 0:
            blocked = 0.0
            if late < 0:
                sleep(-late)
        elif late > blocked + SLACK:  # the input came late: follow it
            origin += late - blocked
            due = origin + float(frame.time)
        else:
            blocked = late
        tracker.arrived(frame.index, due)
        last_time = frame.time
        handed = clock()
        yield frame
        blocked += clock() - handed


class Degrader:
    """Which rung the next pair runs on, from the lag and the measured cost of each rung (module notes)."""

    def __init__(self, rungs: Sequence[Rung], interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not rungs or rungs[-1].engine is not None:
            raise ValueError("a ladder ends with the rung that repeats source frames")
        self.rungs = list(rungs)
        self.interval = interval
        self.clock = clock
        self.cost: list[float | None] = [None] * len(rungs)
        self.cost[-1] = 0.0
        self.best: list[float] = [math.inf] * len(rungs)  # the cheapest a rung ever was: worth retrying if it fits
        self.level = 0
        self._hold_until = -math.inf
        self._calm_since: float | None = None
        self._recover_wait = RECOVER
        self._last_recovery = -math.inf

    def fits(self, level: int) -> bool:
        """Whether rung `level` may keep up: never measured, measured to fit lately, or ever (it was slow
        only while the machine was busy: worth a retry after a calm spell)."""
        cost = self.cost[level]
        return cost is None or min(cost, self.best[level]) <= FIT * self.interval

    def record(self, level: int, seconds: float) -> None:
        """A pair that needed the model took `seconds` on rung `level` (for a rung that runs the model on one
        pair in n, its cost per pair: the model's time divided by n)."""
        previous = self.cost[level]
        self.cost[level] = seconds if previous is None else previous + COST_SMOOTHING * (seconds - previous)
        self.best[level] = min(self.best[level], seconds)

    def start(self) -> int:
        """Begin on the best rung that fits (the cheapest model rung when none does)."""
        models = len(self.rungs) - 1
        self.level = next((level for level in range(models) if self.fits(level)), max(models - 1, 0))
        return self.level

    def _step_down(self, now: float) -> None:
        if self.level < len(self.rungs) - 1 and now >= self._hold_until:
            self.level += 1
            self._hold_until = now + HOLD
            if now - self._last_recovery < RELAPSE:
                self._recover_wait = min(self._recover_wait * 2, MAX_RECOVER)
        self._calm_since = None

    def choose(self, lag: float) -> int:
        """The rung for the next pair, given how late the frame it waits for already is (seconds)."""
        now = self.clock()
        if lag > PANIC_INTERVALS * self.interval:
            self._step_down(now)
            return len(self.rungs) - 1
        cost = self.cost[self.level]
        draining = cost is not None and cost <= FIT * self.interval
        if lag > BEHIND_INTERVALS * self.interval or (lag > STEP_DOWN_INTERVALS * self.interval and not draining):
            self._step_down(now)
        elif lag < self.interval / 2:
            if self._calm_since is None:
                self._calm_since = now
            elif (self.level > 0 and now - self._calm_since >= self._recover_wait and now >= self._hold_until
                  and self.fits(self.level - 1)):
                self.level -= 1
                self._hold_until = now + HOLD
                self._calm_since = None
                self._last_recovery = now
            if now - self._last_recovery > MAX_RECOVER:
                self._recover_wait = RECOVER  # a long good spell: forget old relapses
        else:
            self._calm_since = None
        return self.level


@dataclass
class RealtimeReport:
    """What `--realtime` did: interpolated frames made on a cheaper rung (per rung), and the latency."""

    rungs: list[str]
    degraded_frames: int = 0
    degraded: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float | None] = field(default_factory=dict)  # p50, p95, max
    timed_frames: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: `0 degraded frames, latency p50 41 ms, p95 63 ms, max 90 ms`."""
        parts = ", ".join(f"{name} {count}" for name, count in self.degraded.items())
        degraded = f"{self.degraded_frames} degraded frames" + (f" ({parts})" if parts else "")
        latency = self.latency_ms
        if latency.get("p50") is None:
            return degraded
        return (f"{degraded}, latency p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms, "
                f"max {latency['max']:.0f} ms")


RunPairs = Callable[[Any, list[Any], Any], int]  # (engine or None, pairs, writer) -> frames written


class RealtimeRunner:
    """Runs pairs one at a time on the rung the `Degrader` picks, and keeps the latency books."""

    def __init__(self, rungs: Sequence[Rung], interval: float, tracker: LatencyTracker,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.degrader = Degrader(rungs, interval, clock)
        self.tracker = tracker
        self.clock = clock
        self.degraded: Counter[str] = Counter()
        self._skipped = 0  # pairs repeated since the last one made, on a rung that makes one in n

    @property
    def rungs(self) -> list[Rung]:
        return self.degrader.rungs

    def calibrate(self, measure: Callable[[Any], float]) -> int:
        """Time every model rung once with `measure(engine) -> seconds`, then pick the starting rung."""
        measured: dict[int, float] = {}  # rungs sharing an engine are timed once
        for level, rung in enumerate(self.rungs):
            if rung.engine is not None:
                seconds = measured.setdefault(id(rung.engine), measure(rung.engine))
                self.degrader.record(level, seconds / rung.every)
        return self.degrader.start()

    def _depends_on(self, pair: _Pair, slot: Any, made: bool) -> int:
        if pair.second is not None and slot.time != 0 and (made or slot.time >= Fraction(1, 2)):
            return pair.second.index
        return pair.first.index

    def process(self, pair: _Pair, writer: Any, run: RunPairs) -> int:
        """Write one pair's output frames on the chosen rung; returns the number written."""
        waits_for = pair.second if pair.second is not None else pair.first
        arrival = self.tracker.arrival(waits_for.index)
        lag = self.clock() - arrival if arrival is not None else 0.0
        times = pair.times()
        level = self.degrader.choose(lag) if times else self.degrader.level
        rung = self.rungs[level]
        made = rung.engine is not None and bool(times)
        if made and rung.every > 1:
            self._skipped = (self._skipped + 1) % rung.every
            made = self._skipped == 0
        start = writer.frames_written
        for offset, slot in enumerate(pair.slots):
            self.tracker.expect(start + offset, self._depends_on(pair, slot, made and slot.time in times))
        began = self.clock()
        written = run(rung.engine if made else None, [pair], writer)
        if made:
            self.degrader.record(level, (self.clock() - began) / rung.every)
        if times and level > 0:
            self.degraded[rung.name] += len(times)
        self.tracker.forget(pair.first.index)
        return written

    def report(self) -> RealtimeReport:
        histogram = self.tracker.histogram

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 1)

        degraded = {rung.name: self.degraded[rung.name] for rung in self.rungs if self.degraded[rung.name]}
        return RealtimeReport(
            rungs=[rung.name for rung in self.rungs], degraded_frames=sum(degraded.values()), degraded=degraded,
            latency_ms={"p50": ms(histogram.percentile(0.5)), "p95": ms(histogram.percentile(0.95)),
                        "max": ms(histogram.max if histogram.count else None)},
            timed_frames=histogram.count,
        )

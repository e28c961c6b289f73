"""Output timing from rational rates: which output frames fall between source frames j and j+1, and when.

Output frame i sits at source position i * input_rate / output_rate (exact Fractions). A position
that lands on a source frame passes that frame through; any other is interpolated at its fractional
part between the two source frames around it. Factor k is simply output_rate = k * input_rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from vidgen.errors import UsageError

_RATE_PATTERN = re.compile(r"^\s*(\d+(\.\d+)?)\s*(/\s*(\d+(\.\d+)?)\s*)?$")


def parse_rate(text: str | float | Fraction) -> Fraction:
    """'60', '59.94', '60000/1001' -> Fraction; UsageError for anything else or a non-positive rate."""
    if isinstance(text, (int, float, Fraction)) and not isinstance(text, bool):
        rate = Fraction(text).limit_denominator(1_000_000)
    else:
        match = _RATE_PATTERN.match(str(text))
        if not match:
            raise UsageError(f"--fps {text!r}: not a frame rate", hint="use e.g. 60, 59.94 or 60000/1001")
        rate = Fraction(match.group(1))
        if match.group(4) is not None:
            denominator = Fraction(match.group(4))
            if denominator == 0:
                raise UsageError(f"--fps {text!r}: division by zero", hint="use e.g. 60000/1001")
            rate /= denominator
    if rate <= 0:
        raise UsageError(f"--fps {text!r}: the rate must be positive")
    return rate


@dataclass(frozen=True)
class Slot:
    """One output frame: its index, the source frame before it, and the time t in [0, 1) after that frame."""

    index: int
    source: int
    time: Fraction


@dataclass(frozen=True)
class Timeline:
    input_rate: Fraction
    output_rate: Fraction
    # Timestamps are only as exact as the container's tick (Matroska: 1 ms). An output instant within
    # this distance of a source frame's time shows that frame instead of a near-copy interpolation.
    tolerance: Fraction = Fraction(0)

    @property
    def step(self) -> Fraction:
        """Source frames advanced per output frame."""
        return self.input_rate / self.output_rate

    def slots_after(self, source: int) -> list[Slot]:
        """Output frames at positions in [source, source + 1) for constant-rate input."""
        return self.slots_between(source, Fraction(source) / self.input_rate, Fraction(source + 1) / self.input_rate)

    def slots_between(self, source: int, start: Fraction, end: Fraction) -> list[Slot]:
        """Output frames whose time (seconds) falls in [start, end), the span from source frame `source` to the next.

        Their `time` is the fraction of that span, so variable-rate input is interpolated at true times.
        """
        period = 1 / self.output_rate
        tolerance = min(self.tolerance, period / 4)
        first, stop = math.ceil((start - tolerance) / period), math.ceil((end - tolerance) / period)
        slots = []
        for i in range(first, stop):
            offset = i * period - start
            slots.append(Slot(i, source, offset / (end - start) if offset > tolerance else Fraction(0)))
        return slots

    def output_frames(self, input_frames: int) -> int:
        """Frames needed so the output lasts as long as the input (to within one output frame)."""
        return math.ceil(input_frames / self.step)


def make_timeline(input_rate: Fraction, factor: int | None = None, fps: str | float | Fraction | None = None) -> Timeline:
    if factor is not None and fps is not None:
        raise UsageError("give either a factor (--x2/--x4/--x8/--factor) or --fps, not both")
    if fps is not None:
        return Timeline(input_rate, parse_rate(fps))
    factor = 2 if factor is None else factor
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise UsageError(f"--factor {factor}: must be an integer of at least 2", hint="use --x2, --x4 or --factor 3")
    return Timeline(input_rate, input_rate * factor)

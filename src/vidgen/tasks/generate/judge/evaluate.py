"""Judging clips against captions: one clip's verdict, the match rates of captioned clips, and the
evaluation of a generator on every digit-direction caption (`vidgen eval generate`).

A clip's digit is the class of the classifier's probabilities averaged over the frames that show
something (the tracker's centroids); "no digit" winning gives digit None. Its direction and speed are
the tracker's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidgen.errors import UsageError
from vidgen.tasks.generate.digits import ALL_COMBOS, DIGITS, DIRECTIONS, HELD_OUT, caption, parse_caption
from vidgen.tasks.generate.judge.classifier import NO_DIGIT, DigitClassifier, crops, default_classifier
from vidgen.tasks.generate.judge.tracker import levels, track_levels


@dataclass(frozen=True)
class JudgeResult:
    """What the judge sees in one clip. digit is None when no digit is recognised."""

    digit: int | None
    digit_confidence: float
    direction: str
    speed_px_per_frame: float

    def matches(self, digit: int, direction: str) -> tuple[bool, bool]:
        """(digit correct, direction correct) against a caption's digit and direction."""
        return self.digit == digit, self.direction == direction


def judge_clip(frames: Any, *, classifier: DigitClassifier | None = None) -> JudgeResult:
    """Digit (voted over the frames), its confidence, direction and speed of one clip (T, H, W, 3) uint8."""
    classifier = classifier or default_classifier()
    level = levels(frames)
    motion = track_levels(level)
    points = motion.centroids
    if np.isnan(points[:, 0]).all():
        return JudgeResult(None, 0.0, motion.direction, motion.speed_px_per_frame)
    probabilities = classifier.probabilities(crops(level, points)).mean(axis=0)
    best = int(np.argmax(probabilities))
    digit = None if best == NO_DIGIT else best
    return JudgeResult(digit, float(probabilities[best]) if digit is not None else 0.0, motion.direction,
                       motion.speed_px_per_frame)


def match_rates(rows: Sequence[tuple[bool, bool]]) -> dict[str, Any]:
    """count, digit_accuracy, direction_accuracy and faithfulness (both right) of (digit ok, direction ok) rows;
    the shares are in [0, 1], NaN when there are no rows."""
    count = len(rows)
    digit_ok = sum(d for d, _ in rows)
    direction_ok = sum(m for _, m in rows)
    both = sum(d and m for d, m in rows)
    share = (lambda n: n / count) if count else (lambda n: float("nan"))
    return {"count": count, "digit_accuracy": share(digit_ok), "direction_accuracy": share(direction_ok),
            "faithfulness": share(both)}


def score_clips(clips: Iterable[Any], captions: Iterable[str], *,
                classifier: DigitClassifier | None = None) -> dict[str, Any]:
    """Shares of clips whose digit, direction and both match their captions (the dataset's wording)."""
    classifier = classifier or default_classifier()
    rows = []
    for frames, text in zip(clips, captions, strict=True):
        parsed = parse_caption(text)
        if parsed is None:
            raise UsageError(f"caption {text!r} is not of the form 'the digit D is moving DIRECTION'")
        rows.append(judge_clip(frames, classifier=classifier).matches(*parsed))
    return match_rates(rows)


def evaluate_prompts(generate_fn: Callable[..., Any], *, seed: int, per_combo: int = 4,
                     classifier: DigitClassifier | None = None, batch_size: int = 1) -> dict[str, Any]:
    """Judge `generate_fn(prompt, seed) -> frames` on every digit-direction caption, `per_combo` samples each.

    With `batch_size` > 1, `generate_fn(prompts, seeds) -> [frames, ...]` gets up to that many at once.

    Sample k of every caption uses seed + k (the same noise across captions, so captions are compared on
    equal terms). The report has "seen" and "held_out" (the training-excluded pairs) and "all", each with
    count, digit/direction accuracy and faithfulness (both right); "per_digit" and "per_direction" the
    same per digit and direction prompted; "results" one row per sample.
    """
    if per_combo < 1:
        raise UsageError(f"per_combo must be at least 1, got {per_combo}")
    classifier = classifier or default_classifier()
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch_size}")
    jobs = [(digit, direction, seed + k) for digit, direction in ALL_COMBOS for k in range(per_combo)]
    clips: list[Any] = []
    for start in range(0, len(jobs), batch_size):
        part = jobs[start:start + batch_size]
        if batch_size == 1:
            clips.append(generate_fn(caption(part[0][0], part[0][1]), part[0][2]))
        else:
            clips.extend(generate_fn([caption(d, m) for d, m, _ in part], [s for _, _, s in part]))
    results = []
    for (digit, direction, sample_seed), clip in zip(jobs, clips, strict=True):
        prompt = caption(digit, direction)
        judged = judge_clip(clip, classifier=classifier)
        results.append({"prompt": prompt, "seed": sample_seed, "digit": digit, "direction": direction,
                        "held_out": (digit, direction) in HELD_OUT, "judged_digit": judged.digit,
                        "digit_confidence": judged.digit_confidence, "judged_direction": judged.direction,
                        "speed_px_per_frame": judged.speed_px_per_frame})

    def rates(keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return match_rates([(r["judged_digit"] == r["digit"], r["judged_direction"] == r["direction"])
                            for r in results if keep(r)])

    return {
        "seed": seed,
        "per_combo": per_combo,
        "seen": rates(lambda r: not r["held_out"]),
        "held_out": rates(lambda r: r["held_out"]),
        "all": rates(lambda r: True),
        "per_digit": {str(d): rates(lambda r, d=d: r["digit"] == d) for d in DIGITS},
        "per_direction": {m: rates(lambda r, m=m: r["direction"] == m) for m in DIRECTIONS},
        "results": results,
    }

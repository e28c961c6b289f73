from fractions import Fraction

import pytest

from vidgen.errors import UsageError
from vidgen.tasks.interpolate.engines import bisection_path, nearest_reached
from vidgen.tasks.interpolate.timing import Timeline, make_timeline, parse_rate


@pytest.mark.parametrize("text, rate", [("60", Fraction(60)), ("59.94", Fraction(5994, 100)),
                                         ("60000/1001", Fraction(60000, 1001)), (" 24000 / 1001 ", Fraction(24000, 1001))])
def test_parse_rate_accepts_integer_decimal_and_fraction(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "60/0", "-5", "0", "1/2/3", ""])
def test_parse_rate_rejects_garbage(text):
    with pytest.raises(UsageError):
        parse_rate(text)


def test_factor_places_source_frames_every_k_outputs_and_times_m_over_k():
    timeline = make_timeline(Fraction(24), factor=4)
    slots = timeline.slots_after(3)
    assert [s.index for s in slots] == [12, 13, 14, 15]
    assert [s.time for s in slots] == [0, Fraction(1, 4), Fraction(1, 2), Fraction(3, 4)]
    assert all(s.source == 3 for s in slots)
    assert timeline.output_frames(10) == 40  # same duration as the input


def test_ntsc_film_to_ntsc_60_uses_exact_rational_positions():
    timeline = Timeline(Fraction(24000, 1001), Fraction(60000, 1001))
    positions = [s.index * timeline.step for j in range(4) for s in timeline.slots_after(j)]
    assert positions == [Fraction(2 * i, 5) for i in range(10)]
    # every output slot is covered exactly once across consecutive source frames
    indices = [s.index for j in range(100) for s in timeline.slots_after(j)]
    assert indices == list(range(len(indices)))


def test_factor_and_fps_together_or_below_two_are_usage_errors():
    with pytest.raises(UsageError):
        make_timeline(Fraction(25), factor=2, fps="50")
    with pytest.raises(UsageError):
        make_timeline(Fraction(25), factor=1)


def test_bisection_is_exact_for_dyadic_times_and_shares_midpoints():
    path = bisection_path(Fraction(3, 4))
    assert [mid for _, _, mid in path] == [Fraction(1, 2), Fraction(3, 4)]
    assert nearest_reached(Fraction(3, 4), path) == Fraction(3, 4)


def test_bisection_of_a_third_lands_within_a_sixteenth():
    path = bisection_path(Fraction(1, 3))
    reached = nearest_reached(Fraction(1, 3), path)
    assert abs(reached - Fraction(1, 3)) <= Fraction(1, 32)
    assert len(path) == 4


def test_timestamps_rounded_by_the_container_still_hit_source_frames():
    timeline = Timeline(Fraction(24), Fraction(24), tolerance=Fraction(1, 2000))
    # a source frame stored at 167 ms (really 4/24 s = 166.67 ms) owns output slot 4 exactly
    before = timeline.slots_between(2, Fraction(83, 1000), Fraction(167, 1000))
    after = timeline.slots_between(3, Fraction(167, 1000), Fraction(208, 1000))
    assert [(s.index, s.time) for s in after] == [(4, 0)]
    assert [s.index for s in before] == [2, 3] and before[0].time == 0 and 0 < before[1].time < 1

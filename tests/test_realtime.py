"""`--realtime`: pacing to the input clock, the degradation ladder, latency figures, flat memory."""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import moving_frames, run_cli, write_clip

from vidgen.models.blend import BlendInterpolator
from vidgen.tasks.interpolate import job, pipeline, streamed
from vidgen.tasks.interpolate.realtime import (
    HOLD, MAX_WAIT, RECOVER, Degrader, LatencyHistogram, LatencyTracker, RealtimeRunner, Rung, pace,
)
from vidgen.tasks.interpolate.timing import Slot


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def frame(index: int, seconds: float) -> SimpleNamespace:
    return SimpleNamespace(index=index, time=Fraction(seconds).limit_denominator(10**6))


def test_pacing_releases_frames_at_the_input_clock() -> None:
    clock, tracker = FakeClock(), LatencyTracker()
    released = [(f.index, clock()) for f in pace((frame(i, i / 30) for i in range(5)), tracker, clock=clock,
                                                 sleep=clock.sleep)]
    assert [when - 100.0 for _, when in released] == pytest.approx([i / 30 for i in range(5)])
    assert [tracker.arrival(i) - 100.0 for i in range(5)] == pytest.approx([i / 30 for i in range(5)])


def test_our_own_backlog_counts_as_latency() -> None:
    clock, tracker = FakeClock(), LatencyTracker()
    frames = pace((frame(i, i / 10) for i in range(5)), tracker, clock=clock, sleep=clock.sleep)
    next(frames)
    next(frames)  # released at 100.1
    clock.now += 0.5  # vidgen is busy with frame 1: the input waits in its pipe meanwhile
    next(frames)
    assert tracker.arrival(2) == pytest.approx(100.2)  # on the input clock: the wait is latency
    next(frames)
    assert tracker.arrival(3) == pytest.approx(100.3)
    clock.now = 102.0  # still busy
    next(frames)
    assert tracker.arrival(4) == pytest.approx(100.4)


def test_an_input_that_comes_late_on_its_own_is_followed() -> None:
    clock, tracker = FakeClock(), LatencyTracker()

    def source():
        for index in range(4):
            if index == 2:
                clock.now += 0.7  # the sender stalls: nothing to read for 0.7 s
            yield frame(index, index / 10)

    released = [clock() for _ in pace(source(), tracker, clock=clock, sleep=clock.sleep)]
    assert tracker.arrival(2) == pytest.approx(100.8)  # counted from when it came, not from when it was due
    assert released[3] == pytest.approx(100.9)  # and the clock goes on from there


def test_a_gap_in_timestamps_is_not_waited_for() -> None:
    clock, tracker = FakeClock(), LatencyTracker()
    list(pace(iter([frame(0, 0), frame(1, 10 * MAX_WAIT), frame(2, 10 * MAX_WAIT + 0.1)]), tracker, clock=clock,
              sleep=clock.sleep))
    assert clock.now == pytest.approx(100.1)


def test_histogram_percentiles_within_a_bin_and_constant_memory() -> None:
    histogram = LatencyHistogram()
    bins = len(histogram.bins)
    values = np.random.default_rng(0).uniform(0.010, 0.100, 20_000)
    for value in values:
        histogram.add(float(value))
    assert histogram.percentile(0.5) == pytest.approx(np.percentile(values, 50), rel=0.02)
    assert histogram.percentile(0.95) == pytest.approx(np.percentile(values, 95), rel=0.02)
    assert histogram.max == values.max() and histogram.count == 20_000 and len(histogram.bins) == bins


def ladder(*costs: float | None) -> list[Rung]:
    return [Rung(f"rung{i}", object()) for i in range(len(costs))] + [Rung("repeat", None)]


def test_degrader_starts_on_the_best_rung_that_fits_and_steps_down_then_recovers() -> None:
    clock = FakeClock()
    interval = 1 / 30
    degrader = Degrader(ladder(None, None, None), interval, clock)
    for level, cost in enumerate([0.5, 0.1, 0.01]):
        degrader.record(level, cost)
    assert degrader.start() == 2  # rungs 0 and 1 cannot keep up at 30 fps
    degrader.record(1, 0.02)  # rung 1 got cheaper (less load on the machine)
    assert degrader.choose(3 * interval) == 2  # a little behind on a rung that keeps up: the lag drains
    assert degrader.choose(4.5 * interval) == 3  # behind: one rung down
    assert degrader.choose(4.5 * interval) == 3  # held: the step needs time to show
    clock.now += HOLD
    assert degrader.choose(10 * interval) == 3  # far behind: this pair is repeated, no rung below to go to
    for _ in range(3):
        clock.now += RECOVER / 2
        level = degrader.choose(0.0)
    assert level == 2
    for _ in range(5):
        clock.now += RECOVER
        level = degrader.choose(0.0)
    assert level == 1  # recovered as far as the measured costs allow, never to rung 0 (0.5 s a pair)


def test_a_relapse_right_after_recovering_doubles_the_wait() -> None:
    clock = FakeClock()
    interval = 1 / 30
    degrader = Degrader(ladder(0.01, 0.001), interval, clock)
    degrader.record(0, 0.01)
    degrader.level = 1
    degrader.choose(0.0)
    clock.now += RECOVER
    assert degrader.choose(0.0) == 0  # recovered
    clock.now += HOLD
    assert degrader.choose(4.5 * interval) == 1  # relapse at once
    degrader.choose(0.0)
    clock.now += RECOVER
    assert degrader.choose(0.0) == 1  # not yet: the wait doubled
    clock.now += RECOVER
    assert degrader.choose(0.0) == 0


def test_a_rung_that_does_not_keep_up_steps_down_sooner_than_one_that_does() -> None:
    clock = FakeClock()
    interval = 1 / 30
    degrader = Degrader(ladder(None, None), interval, clock)
    degrader.record(0, 0.5 * interval)
    assert degrader.choose(3 * interval) == 0  # a stall: the rung makes up 16 ms a pair, so the lag drains
    degrader.record(0, 10 * interval)  # slow now: the smoothed cost no longer fits
    assert degrader.choose(3 * interval) == 1


def test_a_rung_that_runs_every_other_pair_repeats_the_rest_and_costs_half() -> None:
    clock = FakeClock()
    tracker = LatencyTracker(clock)
    engine = object()
    rungs = [Rung("full", object()), Rung("half", engine, every=2), Rung("repeat", None)]
    runner = RealtimeRunner(rungs, 1 / 30, tracker, clock)
    runner.degrader.record(0, 1.0)  # never fits: the runner starts one down
    assert runner.calibrate(lambda e: 0.05 if e is engine else 1.0) == 1  # 50 ms a pair, every other: 25 ms
    assert runner.degrader.cost[1] == pytest.approx(0.025)
    writer, used = Writer(tracker), []

    def run(chosen, pairs, out):
        used.append(chosen)
        clock.now += 0.05 if chosen is not None else 0.0
        for slot in pairs[0].slots:
            out.write(slot)
        return len(pairs[0].slots)

    previous = SimpleNamespace(index=0)
    tracker.arrived(0, clock.now)
    for index in range(1, 11):
        clock.now += 1 / 30
        current = SimpleNamespace(index=index)
        tracker.arrived(index, clock.now)
        pair = SimpleNamespace(first=previous, second=current, slots=[Slot(0, 0, Fraction(0)), Slot(1, 0, Fraction(1, 2))],
                               times=lambda: (Fraction(1, 2),))
        runner.process(pair, writer, run)
        previous = current
    assert used == [None, engine] * 5  # one pair made, one repeated, in turn
    assert runner.report().degraded == {"half": 10}  # every new frame on that rung counts, made or repeated
    assert runner.degrader.cost[1] == pytest.approx(0.025)


def test_the_fast_models_ladder_ends_with_every_other_pair_then_repeat() -> None:
    name, engine = job.load_engine("fast", "cpu")
    rungs = streamed.realtime_ladder(name, engine, "fast", "cpu", 1.0, "auto", 0)
    assert [(r.name, r.every) for r in rungs] == [
        ("classical-flow.dis-fast", 1), ("classical-flow.dis-fast every other pair", 2), ("repeat", 1)]
    assert rungs[1].engine is engine


class Writer:
    """Muxes at once: calls the tracker as the real writer's thread would."""

    def __init__(self, tracker: LatencyTracker) -> None:
        self.tracker = tracker
        self.frames_written = 0

    def write(self, _: object) -> None:
        self.tracker.muxed(self.frames_written)
        self.frames_written += 1


def test_bookkeeping_stays_flat_over_a_long_run() -> None:
    clock = FakeClock()
    tracker = LatencyTracker(clock)
    runner = RealtimeRunner(ladder(None), 1 / 60, tracker, clock)
    writer = Writer(tracker)
    source = [SimpleNamespace(index=0)]

    def run(engine, pairs, out):
        clock.now += 0.004
        for slot in pairs[0].slots:
            out.write(slot)
        return len(pairs[0].slots)

    sizes = []
    tracker.arrived(0, clock.now)
    for index in range(1, 100_001):  # an hour and a half at 30 fps
        current = SimpleNamespace(index=index)
        tracker.arrived(index, clock.now)
        pair = SimpleNamespace(first=source[0], second=current, slots=[Slot(0, 0, Fraction(0)), Slot(1, 0, Fraction(1, 2))],
                               times=lambda: (Fraction(1, 2),))
        runner.process(pair, writer, run)
        source[0] = current
        sizes.append(tracker.pending)
        clock.now += 1 / 30
    report = runner.report()
    assert max(sizes) <= 2 and report.timed_frames == 200_000 and report.degraded_frames == 0
    # made frames: the 4 ms of the model; passed-through ones wait for the next frame (1/30 s and 4 ms) too
    assert report.latency_ms["p50"] == pytest.approx(4.0, rel=0.02)
    assert report.latency_ms["p95"] == pytest.approx(8.0 + 1000 / 30, rel=0.02)


class SlowBlend:
    """A network-like engine: a blend that costs `cost()` seconds per call."""

    uses_network = True
    device = "cpu"

    def __init__(self, scale: float, cost) -> None:
        self.scale, self.cost = scale, cost
        self.calls = 0

    def interpolate(self, frames0, frames1, times):
        self.calls += 1
        time.sleep(self.cost(self))
        return BlendInterpolator().interpolate(frames0, frames1, times)

    def peak_bytes(self, *args: object) -> int:
        return 0


def test_a_run_that_falls_behind_degrades_then_recovers_and_reports_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    clip = write_clip(tmp_path / "in.mkv", moving_frames(150, 32, 32), rate=24, codec="ffv1", options={})
    engines: dict[str, SlowBlend] = {}
    busy = {"until": None}

    def full_cost(engine: SlowBlend) -> float:  # after 10 pairs the machine is busy for 0.6 s
        if engine.calls == 2 + 10:
            busy["until"] = time.monotonic() + 0.6
        return 0.2 if busy["until"] is not None and time.monotonic() < busy["until"] else 0.002

    def load(model, device="auto", scale=1.0, precision="auto", tile=0):
        if model == streamed.FAST_MODEL:
            return "classical-flow.dis-fast", engines.setdefault("fast", SlowBlend(1.0, lambda e: 0.001))
        cost = full_cost if scale == 1.0 else (lambda e: 0.002)
        return "net", engines.setdefault(f"net{scale:g}", SlowBlend(scale, cost))

    monkeypatch.setattr(job, "load_engine", load)
    result = pipeline.interpolate_video(clip, tmp_path / "out.mkv", model="net", realtime=True,
                                        encode=pipeline.EncodeOptions(codec="ffv1"))
    report = result.realtime
    assert report["rungs"] == ["net scale 1", "net scale 0.5", "net scale 0.25", "classical-flow.dis-fast",
                               "classical-flow.dis-fast every other pair", "repeat"]
    assert report["degraded"].get("net scale 0.5", 0) > 0  # one rung down while busy ...
    assert 0 < report["degraded_frames"] < 100
    assert engines["net1"].calls > 2 + 60  # ... and back on the full model afterwards
    assert result.output_frames == 300 and report["timed_frames"] == 300
    assert report["latency_ms"]["max"] < 1000


def test_realtime_json_has_degraded_frames_and_latency(clip: Path, tmp_path: Path) -> None:
    result = run_cli("interpolate", str(clip), "-m", "blend", "--realtime", "-o", str(tmp_path / "o.mkv"), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    live = record["realtime"]
    assert live["degraded_frames"] == 0 and set(live["latency_ms"]) == {"p50", "p95", "max"}
    assert live["timed_frames"] == record["output_frames"] == 18
    plain = run_cli("interpolate", str(clip), "-m", "blend", "-o", str(tmp_path / "p.mkv"), "--json")
    assert "realtime" not in json.loads(plain.stdout.strip().splitlines()[-1])  # file runs: as before


# --- speed for real time on CPU ---------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "expected"), [({"avx512_bf16"}, "bf16"), ({"amx_bf16", "avx2"}, "bf16"),
                                                  ({"avx512f", "avx2"}, "fp32"), (set(), "fp32")])
def test_auto_precision_picks_bf16_only_where_the_cpu_computes_it(monkeypatch: pytest.MonkeyPatch, flags: set[str],
                                                                  expected: str) -> None:
    import torch

    from vidgen.runtime import devices

    devices.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    try:
        assert devices.resolve_precision("auto", torch.device("cpu")) == expected
        assert devices.resolve_precision("fp32", torch.device("cpu")) == "fp32"  # asked for: kept
        assert devices.resolve_precision("auto", torch.device("cuda")) == "fp16"
        seen = []
        monkeypatch.setattr(job, "_engine_for", lambda loaded, device, scale, precision, tile: seen.append(precision))
        job.load_engine("blend", "cpu")
        assert seen == [expected]  # what the engines get: interpolate, its frame API and --realtime
    finally:
        devices.cpu_has_native_bf16.cache_clear()


def test_the_fast_path_makes_the_same_frames_however_its_work_is_split() -> None:
    from vidgen.models.classical_flow import ClassicalFlowInterpolator

    frames = moving_frames(6, 160, 96, seed=3)
    model = ClassicalFlowInterpolator(flow_width=80, projection_width=80)  # flows and projection at half size
    for times in ([0.5], [1 / 3, 2 / 3], [0.25, 0.5, 0.75]):
        serial = [model._pair(a, b, times, False, False) for a, b in zip(frames, frames[1:])]
        split = [model.interpolate_pair(a, b, times) for a, b in zip(frames, frames[1:])]  # two threads per pair
        batched = model.interpolate(np.stack(frames[:-1]), np.stack(frames[1:]), times)  # two pairs at a time
        for one, two, three in zip(serial, split, batched):
            assert np.array_equal(one, two) and np.array_equal(one, three)


def test_splatting_at_one_half_mirrors_exactly() -> None:
    from vidgen.models.classical_flow import _splat

    rng = np.random.default_rng(0)
    flow = (rng.standard_normal((2 * 30, 40, 2)) * 3).astype(np.float32)
    weight = rng.choice(np.float32([1.0, 0.05]), (2 * 30, 40))
    columns = [(rng.standard_normal(2 * 30 * 40) * 2).astype(np.float32) for _ in range(2)]
    mirrored = [-c for c in columns]  # the flows to frame 1 at t = 1/2
    full, mass = _splat(columns + mirrored, [], flow, weight, (30, 40))
    half, mass_again = _splat(columns, [], flow, weight, (30, 40))
    assert np.array_equal(full[..., 2:], -half) and np.array_equal(mass, mass_again)

"""Interrupted runs continue from their last finished segment; outputs appear only when complete."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from helpers import moving_frames, write_clip

from vidgen.tasks.interpolate import job, pipeline
from vidgen.tasks.interpolate.engines import WeightlessEngine
from vidgen.video.encode import EncodeOptions
from vidgen.video.segments import work_dir_for


class CountingBlend:
    """Blend that counts calls and can be told to fail (like Ctrl-C) on a given call."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls = 0
        self.fail_on_call = fail_on_call

    def interpolate(self, frames0, frames1, times):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt
        out = [np.floor((1 - t) * frames0.astype(np.float64) + t * frames1 + 0.5) for t in times]
        return np.stack(out, 1).astype(np.uint8)


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray() for frame in container.decode(video=0)]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "in.mkv", moving_frames(11), codec="ffv1", pix_fmt="yuv420p", options={})


def use_engine(monkeypatch: pytest.MonkeyPatch, engine: CountingBlend) -> None:
    monkeypatch.setattr(job, "load_engine", lambda *a, **k: ("counting-blend", WeightlessEngine(engine)))


def test_resume_continues_after_last_finished_segment_and_matches_a_full_run(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = dict(factor=2, encode=EncodeOptions(codec="ffv1"), batch_size=1, segment_pairs=3)
    full = tmp_path / "full.mkv"
    use_engine(monkeypatch, CountingBlend())
    pipeline.interpolate_video(source, full, **options)

    out = tmp_path / "out.mkv"
    use_engine(monkeypatch, CountingBlend(fail_on_call=8))  # dies in the third segment
    with pytest.raises(KeyboardInterrupt):
        pipeline.interpolate_video(source, out, **options)
    assert not out.exists()
    assert len(list(work_dir_for(out).glob("part*.mkv"))) == 2

    resumed = CountingBlend()
    use_engine(monkeypatch, resumed)
    result = pipeline.interpolate_video(source, out, resume=True, **options)
    assert resumed.calls == 10 - 6  # pairs 6..9 only; the 6 pairs of two finished segments are reused
    assert result.output_frames == 22 and result.input_frames == 11
    assert not work_dir_for(out).exists()
    assert all(np.array_equal(a, b) for a, b in zip(decoded(full), decoded(out), strict=True))


def test_without_resume_or_with_other_settings_it_starts_over(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.mkv"
    use_engine(monkeypatch, CountingBlend(fail_on_call=5))
    with pytest.raises(KeyboardInterrupt):
        pipeline.interpolate_video(source, out, factor=2, encode=EncodeOptions(codec="ffv1"), batch_size=1, segment_pairs=2)
    again = CountingBlend()
    use_engine(monkeypatch, again)
    pipeline.interpolate_video(source, out, factor=4, encode=EncodeOptions(codec="ffv1"), batch_size=1, segment_pairs=2, resume=True)
    assert again.calls == 10  # different factor: the old parts do not match


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".nut"])
def test_many_h264_segments_join_into_one_playable_stream(suffix: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Matroska and NUT parts give their first B-frame-delayed packets no decode time: the join restores them
    source = write_clip(tmp_path / "in.mp4", moving_frames(13))
    use_engine(monkeypatch, CountingBlend())
    out = tmp_path / f"out{suffix}"
    pipeline.interpolate_video(source, out, factor=3, batch_size=2, segment_pairs=4)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        times = [float(frame.time) for frame in container.decode(stream)]
        assert stream.average_rate == 72
    assert len(times) == 39
    # NUT has no edit list: its timestamps start after the B-frame delay, as one unsegmented NUT file's would
    assert [t - times[0] for t in times] == pytest.approx([i / 72 for i in range(39)], abs=1e-3)
    assert times[0] == pytest.approx(0 if suffix != ".nut" else 2 / 72, abs=1e-3)

"""Peak-memory estimate: checked before anything is written; out-of-memory at run time reads the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from helpers import moving_frames, write_clip
from vidgen import allocator
from vidgen.cli import app
from vidgen.errors import InsufficientMemoryError
from vidgen.tasks.interpolate import job, pipeline
from vidgen.tasks.interpolate.engines import WeightlessEngine
from vidgen.runtime import memory
from vidgen.tasks.interpolate.engines import MidpointNetworkInterpolator


class Average(torch.nn.Module):
    def forward(self, img0, img1, scale=1.0):
        return (img0 + img1) / 2


def network(tile: int = 0, scale: float = 1.0) -> MidpointNetworkInterpolator:
    return MidpointNetworkInterpolator(Average(), torch.device("cpu"), scale=scale, tile=tile)


def test_estimate_grows_with_pixels_batch_and_times_and_shrinks_with_tiles_and_scale() -> None:
    engine = network()
    sizes = [(360, 640), (720, 1280), (1080, 1920), (2160, 3840)]
    by_size = [engine.peak_bytes(h, w, 1, 1) for h, w in sizes]
    assert by_size == sorted(by_size) and len(set(by_size)) == len(by_size)
    by_batch = [engine.peak_bytes(1080, 1920, b, 1) for b in (1, 2, 4, 8)]
    assert by_batch == sorted(by_batch) and len(set(by_batch)) == 4
    assert engine.peak_bytes(1080, 1920, 1, 3) > engine.peak_bytes(1080, 1920, 1, 1)
    untiled = engine.peak_bytes(2160, 3840, 1, 1)
    tiled = [network(tile).peak_bytes(2160, 3840, 1, 1) for tile in (2048, 1024, 512)]
    assert untiled > tiled[0] > tiled[1] > tiled[2]
    assert network(scale=0.5).peak_bytes(2160, 3840, 1, 1) < untiled
    # 4K untiled at scale 1 is several GB; a 1024-px tile brings it near 1080p's.
    assert untiled > 8 * 2**30 and tiled[1] < 2 * by_size[2]


def test_job_estimate_covers_weightless_engines_and_buffers() -> None:
    from vidgen.models.blend import BlendInterpolator

    small = memory.job_peak_bytes(WeightlessEngine(BlendInterpolator()), 480, 640, 1, 1)
    assert 0 < small < memory.job_peak_bytes(WeightlessEngine(BlendInterpolator()), 480, 640, 4, 1)
    assert small < memory.job_peak_bytes(WeightlessEngine(BlendInterpolator()), 1080, 1920, 1, 1)


def test_times_per_pair() -> None:
    from fractions import Fraction

    assert memory.times_per_pair(Fraction(2)) == 1 and memory.times_per_pair(Fraction(4)) == 3
    assert memory.times_per_pair(Fraction(60, 24)) == 3 and memory.times_per_pair(Fraction(30, 25)) == 2


def test_available_memory_is_read_from_the_system() -> None:
    available = memory.available_bytes(torch.device("cpu"))
    assert available is None or available > 0


def test_not_enough_memory_fails_before_writing_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(4))
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 1 << 20)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, ["interpolate", str(clip), "-m", "blend", "--batch-size", "2", "-o", str(out)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "needs about" in lines[0] and "only 1 MB memory available" in lines[0]
    assert "smaller --batch-size" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no output, no work folder


@pytest.mark.parametrize("failure", [MemoryError(), RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 9 GB"),
                                     torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")])
def test_out_of_memory_at_run_time_is_the_same_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure) -> None:
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(5))

    class RunsOut:
        def interpolate(self, frames0, frames1, times):
            raise failure

    monkeypatch.setattr(job, "load_engine", lambda *a, **k: ("runs-out", WeightlessEngine(RunsOut())))
    with pytest.raises(InsufficientMemoryError, match="ran out of memory") as caught:
        pipeline.interpolate_video(clip, tmp_path / "out.mp4", batch_size=2)
    assert "--batch-size" in caught.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_other_runtime_errors_are_not_memory_errors() -> None:
    assert not memory.is_out_of_memory(RuntimeError("boom"))
    assert not memory.is_out_of_memory(ValueError("out of memory"))  # only the types that mean it


def test_hint_names_the_options_that_help() -> None:
    assert memory.shortage_hint(True, 4, 1.0, 0) == "try --scale 0.5, --tile 1024 or a smaller --batch-size (now 4)"
    assert memory.shortage_hint(False, 1, 1.0, 0) == "free some memory or use a machine with more"


def _peak_rss_kb(source: Path, output: Path) -> int:
    """Peak RSS of a fresh process that interpolates `source` (its own maximum: runs never mix)."""
    import subprocess
    import sys

    code = ("import resource, sys, vidgen; vidgen.interpolate(sys.argv[1], sys.argv[2], factor=2, model='blend', batch_size=4); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", code, str(source), str(output)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_video_length(tmp_path: Path) -> None:
    frames = moving_frames(120, width=160, height=96)
    short = write_clip(tmp_path / "short.mkv", frames[:20], codec="ffv1", pix_fmt="yuv420p", options={})
    long = write_clip(tmp_path / "long.mkv", frames, codec="ffv1", pix_fmt="yuv420p", options={})
    short_kb = _peak_rss_kb(short, tmp_path / "short_out.mp4")
    long_kb = _peak_rss_kb(long, tmp_path / "long_out.mp4")
    assert long_kb <= short_kb * 1.15 or long_kb <= short_kb + 20 * 1024, (short_kb, long_kb)


_REFAULTS = """
import resource, sys
import numpy as np
from vidgen.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):  # what a video loop does: frame-sized float arrays made and dropped every frame
    a = np.ones((360, 640, 3), np.float32)
    b = np.ones((360, 640, 3), np.float32)
    c = a + b
    del a, b, c
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_frame_sized_blocks_are_reused_not_faulted_in_again() -> None:
    # The CLI calls keep_freed_memory: without it every frame's arrays are unmapped and their pages faulted in
    # again (30% of the wall time of `interpolate --fast` was system time).
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _REFAULTS, mode], capture_output=True, text=True, check=True)
        kept, count = out.stdout.split()
        return kept, int(count)

    kept, with_it = faults("keep")
    if kept != "True":
        pytest.skip("not glibc")
    _, without = faults("default")
    pages = 40 * 3 * 360 * 640 * 3 * 4 // 4096
    assert without > pages / 2, without  # the defaults fault most pages in again
    assert with_it < pages / 10, with_it


def test_keep_freed_memory_leaves_a_users_malloc_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")
    assert allocator.keep_freed_memory() is False


def test_the_cli_keeps_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    assert CliRunner().invoke(app, ["models", "list"]).exit_code == 0
    assert calls == [1]

"""`vidgen fuse` and `vidgen eval fuse` end to end on tiny clips; `vidgen train fuse` for two steps."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import moving_frames, write_clip
from vidgen.cli import app
from vidgen.metrics.scores import compare_videos

runner = CliRunner()
TINY_CONFIG = {"base_channels": 8, "heads": 2, "blocks": 1}


@pytest.fixture(autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _noisy_copies(folder: Path, count: int = 3, frames: int = 7, width: int = 48, height: int = 40) -> tuple[Path, list[Path]]:
    clean = moving_frames(frames, width, height)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        noisy = [np.clip(f + rng.normal(0, 18, f.shape), 0, 255).astype(np.uint8) for f in clean]
        paths.append(write_clip(folder / f"take{i}.mp4", noisy))
    return write_clip(folder / "clean.mp4", clean), paths


def _fuse(*args: str) -> object:
    return runner.invoke(app, ["fuse", *args])


def _error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("mode", ["mean", "median"])
def test_mean_and_median_beat_every_single_noisy_view(tmp_path: Path, mode: str) -> None:
    clean, takes = _noisy_copies(tmp_path)
    out = tmp_path / f"{mode}.mp4"
    result = _fuse(*map(str, takes), "-o", str(out), "--mode", mode, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 7 and summary["mode"] == mode and summary["warnings"] == []
    fused = compare_videos(clean, out)["psnr"]
    singles = [compare_videos(clean, take)["psnr"] for take in takes]
    assert fused > max(singles) + 2, (fused, singles)


def test_mismatched_inputs_are_resampled_with_warnings_or_refused_under_strict(tmp_path: Path) -> None:
    first = write_clip(tmp_path / "a.mp4", moving_frames(9, 48, 40), rate=24)
    other = write_clip(tmp_path / "b.mp4", moving_frames(7, 32, 32), rate=30)  # smaller, faster, shorter
    out = tmp_path / "out.mp4"
    result = _fuse(str(first), str(other), "-o", str(out), "--mode", "median")
    assert result.exit_code == 0, result.output
    assert "b.mp4 is 32x32 at 30 fps: resampled to a.mp4's 48x40 at 24 fps" in result.output
    assert "output trimmed to 6 frames" in result.output  # 7/30 s: frames 0-5 of a.mp4 (0 to 5/24 s)
    from vidgen.video.reader import probe, read_rgb_frames

    info = probe(out)
    assert (info.width, info.height, info.frame_rate) == (48, 40, Fraction(24))
    assert sum(1 for _ in read_rgb_frames(out)) == 6

    longer = write_clip(tmp_path / "c.mp4", moving_frames(12, 48, 40), rate=24)
    result = _fuse(str(first), str(longer), "-o", str(tmp_path / "long.mp4"), "--mode", "mean")
    assert result.exit_code == 0 and "c.mp4 runs past the end of a.mp4" in result.output

    for bad, what in ((other, "size 32x32 differs"), (longer, "differs")):
        refused = tmp_path / "strict.mp4"
        result = _fuse(str(first), str(bad), "-o", str(refused), "--mode", "median", "--strict")
        assert result.exit_code != 0
        assert what in _error_line(result.output) and "--strict" in result.output
        assert not refused.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left

    same_rate = write_clip(tmp_path / "d.mp4", moving_frames(9, 48, 40), rate=30)
    result = _fuse(str(first), str(same_rate), "-o", str(tmp_path / "rate.mp4"), "--mode", "median", "--strict")
    assert result.exit_code != 0 and "frame rate 30 fps differs" in result.output


def test_learned_mode_uses_the_shipped_model_offline(tmp_path: Path) -> None:
    """The default: `fusion.small`, shipped in the package (VIDGEN_OFFLINE is set for every test)."""
    clean, takes = _noisy_copies(tmp_path, count=3, frames=5)
    out = tmp_path / "learned.mp4"
    result = _fuse(*map(str, takes), "-o", str(out), "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "learned" and summary["model"] == "fusion.small" and summary["frames"] == 5
    # 29.8 dB against 26.3 for one take (these takes are noise on a white-noise texture, where the mean is best)
    assert compare_videos(clean, out)["psnr"] > compare_videos(clean, takes[0])["psnr"] + 2.5


def test_learned_mode_without_a_model_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidgen import registry
    from vidgen.errors import UnknownModelError

    def no_default(task: str) -> object:
        raise UnknownModelError(f"no default {task} model")

    monkeypatch.setattr(registry, "default_entry", no_default)  # as if no fuse model were registered
    clean, takes = _noisy_copies(tmp_path, count=2, frames=5)
    out = tmp_path / "learned.mp4"
    result = _fuse(*map(str, takes), "-o", str(out))
    assert result.exit_code == 1
    line = _error_line(result.output)
    assert "no fuse model is registered" in line and "--mode median" in line and "vidgen train fuse" in line
    assert not out.exists()
    evaluated = runner.invoke(app, ["eval", "fuse", str(clean), "--views", "2", "--json", "--seed", "3"])
    assert evaluated.exit_code == 0, evaluated.output
    modes = [json.loads(line)["mode"] for line in evaluated.stdout.strip().splitlines()]
    assert modes == ["mean", "median", "best_view"]  # no default fuse model: learned is skipped
    table = runner.invoke(app, ["eval", "fuse", str(clean), "--views", "2"])
    assert table.exit_code == 0 and "median" in table.output and "learned mode skipped" in table.output


def _add_tiny_fusion(folder: Path, name: str) -> Path:
    """A tiny random-weight fusion model (seed 0) saved in `folder` and added to the registry as `name`."""
    from safetensors.torch import save_file

    from vidgen.registry.archs import get_arch

    torch.manual_seed(0)
    weights = folder / f"{name}.safetensors"
    save_file(get_arch("fusion").build(**TINY_CONFIG).state_dict(), str(weights))
    added = runner.invoke(app, ["models", "add", name, "--weights", str(weights), "--arch", "fusion",
                                "--config", json.dumps(TINY_CONFIG), "--license", "MIT"])
    assert added.exit_code == 0, added.output
    return weights


def test_learned_mode_uses_a_model_added_with_models_add(tmp_path: Path) -> None:
    clean, takes = _noisy_copies(tmp_path, count=2, frames=5)
    out = tmp_path / "learned.mp4"
    _add_tiny_fusion(tmp_path, "tinyfuse")
    result = _fuse(*map(str, takes), "-o", str(out), "--model", "tinyfuse", "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "learned" and summary["model"] == "fusion.tinyfuse" and summary["frames"] == 5
    # A random model starts near the per-pixel median of its views (its residual head is small).
    assert compare_videos(clean, out)["psnr"] > 20

    wrong = _fuse(*map(str, takes), "-o", str(tmp_path / "x.mp4"), "--model", "rife")
    assert wrong.exit_code != 0 and "not a fuse model" in _error_line(wrong.output)
    mixed = _fuse(*map(str, takes), "-o", str(tmp_path / "x.mp4"), "--model", "tinyfuse", "--mode", "mean")
    assert mixed.exit_code == 2 and "--model applies to --mode learned" in _error_line(mixed.output)

    evaluated = runner.invoke(app, ["eval", "fuse", str(clean), "--views", "2", "--json", "--model", "tinyfuse"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout.splitlines()[0])["mode"] == "learned:fusion.tinyfuse"


def test_eval_fuse_json_fields_and_determinism(tmp_path: Path) -> None:
    clean = write_clip(tmp_path / "clean.mp4", moving_frames(6, 48, 40))
    args = ["eval", "fuse", str(clean), "--views", "3", "--seed", "5", "--max-frames", "5", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    rows = [json.loads(line) for line in first.stdout.strip().splitlines()]
    assert [r["mode"] for r in rows] == ["learned:fusion.small", "mean", "median", "best_view"]
    for row in rows:
        assert {"clip", "mode", "views", "seed", "frames", "psnr", "psnr_clip", "ssim", "ms_per_frame"} <= set(row)
        assert row["frames"] == 5 and row["views"] == 3 and row["seed"] == 5
        assert 5 < row["psnr"] < 60 and 0 < row["ssim"] <= 1
        assert 5 < row["psnr_clip"] <= row["psnr"] + 1e-3  # the MSE's mean is at least its geometric mean
    assert 1 <= rows[-1]["view"] <= 3 and 1 <= rows[-1]["view_clip"] <= 3
    again = [json.loads(line) for line in runner.invoke(app, args).stdout.strip().splitlines()]
    assert [r["psnr"] for r in again] == [r["psnr"] for r in rows]
    table = runner.invoke(app, ["eval", "fuse", str(clean), "--views", "2"])
    assert table.exit_code == 0 and "learned:fusion.small" in table.output and "best view" in table.output


def test_one_input_is_allowed_and_errors_are_one_line(tmp_path: Path) -> None:
    _, takes = _noisy_copies(tmp_path, count=2, frames=5)
    single = tmp_path / "single.mp4"
    result = _fuse(str(takes[0]), "-o", str(single), "--mode", "median", "--crf", "0")
    assert result.exit_code == 0, result.output
    assert compare_videos(takes[0], single)["psnr"] > 35  # one view: a re-encoded copy

    missing = _fuse(str(takes[0]), str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4"), "--mode", "mean")
    assert missing.exit_code == 1 and "nope.mp4" in _error_line(missing.output)
    exists = _fuse(*map(str, takes), "-o", str(single), "--mode", "mean")
    assert exists.exit_code == 1 and "already exists" in _error_line(exists.output)
    over_input = _fuse(*map(str, takes), "-o", str(takes[1]), "--mode", "mean", "--overwrite")
    assert over_input.exit_code == 1 and "overwrite the input" in _error_line(over_input.output)
    bad_mode = _fuse(*map(str, takes), "-o", str(tmp_path / "m.mp4"), "--mode", "best")
    assert bad_mode.exit_code == 2 and "--mode best" in _error_line(bad_mode.output)
    replaced = _fuse(*map(str, takes), "-o", str(single), "--mode", "mean", "--overwrite")
    assert replaced.exit_code == 0, replaced.output


def _fuse_footage(tmp_path: Path) -> tuple[Path, Path]:
    data, val = tmp_path / "data", tmp_path / "val"
    data.mkdir()
    val.mkdir()
    for i in range(2):
        write_clip(data / f"t{i}.mp4", moving_frames(7, 48, 40, seed=i))
    write_clip(val / "v.mp4", moving_frames(6, 48, 40, seed=9))
    return data, val


def _train_fuse(data: Path, val: Path, run: Path, *args: str) -> object:
    return runner.invoke(app, ["train", "fuse", "--arch", "fusion", "--data", str(data), "--val", str(val),
                               "--out", str(run), "--steps", "2", "--crop", "32", "--val-crop", "32",
                               "--batch-size", "2", "--val-every", "2", "--val-windows", "2", "--quiet", "--json",
                               "--device", "cpu", *args])


def test_train_fuse_runs_two_steps(tmp_path: Path) -> None:
    data, val = _fuse_footage(tmp_path)
    config = tmp_path / "run.toml"
    config.write_text("[model]\n" + "".join(f"{k} = {v}\n" for k, v in TINY_CONFIG.items())
                      + "[task_options]\nmin_views = 2\nmax_views = 3\n")
    run = tmp_path / "run"
    result = _train_fuse(data, val, run, "--config", str(config))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["task"] == "fuse" and summary["steps"] == 2 and summary["baseline_val"] is not None
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    validation = [r for r in records if "val_psnr" in r][-1]
    assert {"val_mean_psnr", "val_median_psnr", "val_best_view_psnr", "val_baseline_psnr"} <= set(validation)
    assert (run / "best.safetensors").is_file()
    listed = runner.invoke(app, ["train", "fuse"])
    assert listed.exit_code == 0 and "fusion" in listed.output


def test_a_part_added_to_a_trained_model_is_trained_alone(tmp_path: Path) -> None:
    """`--init` plus [model] options that add a module keeps every old weight; `--train-only` trains just it."""
    from safetensors.torch import load_file

    data, val = _fuse_footage(tmp_path)
    weights = _add_tiny_fusion(tmp_path, "base")
    grow = tmp_path / "grow.toml"
    grow.write_text("[model]\nchoose_photometry = true\n")
    run = tmp_path / "run"
    result = _train_fuse(data, val, run, "--init", "base", "--config", str(grow), "--train-only", "photometry",
                         "--lr", "1e-2", "--warmup", "0")
    assert result.exit_code == 0, result.output
    start, tuned = load_file(str(weights)), load_file(str(run / "last.safetensors"))
    new = set(tuned) - set(start)
    assert new and all(k.startswith("photometry.") for k in new)
    assert all(torch.equal(tuned[k], start[k]) for k in start)  # frozen
    assert tuned["photometry.view_score.2.weight"].abs().sum() > 0  # trained: its last layers start at zero

    unknown = _train_fuse(data, val, tmp_path / "r2", "--init", "base", "--train-only", "nothing")
    assert unknown.exit_code == 2 and "--train-only nothing: names no parameter" in _error_line(unknown.output)
    wider = tmp_path / "wider.toml"
    wider.write_text("[model]\nbase_channels = 16\n")
    misfit = _train_fuse(data, val, tmp_path / "r3", "--init", "base", "--config", str(wider))
    assert misfit.exit_code == 2 and "does not fit the [model] options" in _error_line(misfit.output)


def test_clip_psnr_is_of_the_mean_squared_error_so_exact_frames_do_not_carry_it() -> None:
    import math

    from vidgen.metrics.scores import clip_psnr, mean_finite

    assert clip_psnr([30.0, 30.0]) == pytest.approx(30.0)
    assert clip_psnr([20.0, math.inf]) == pytest.approx(20.0 + 10 * math.log10(2))  # half the frames exact: +3 dB
    assert mean_finite([20.0, math.inf]) == 60.0  # the mean of the frames' dB: carried by the exact one
    assert clip_psnr([math.inf, math.inf]) == math.inf and math.isnan(clip_psnr([]))

"""`vidgen train` and its run folder: one run per folder (--resume / --overwrite), a lock while it trains, nothing
left of a run that failed before its first checkpoint, one-line errors for damaged run files, swept temporaries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from helpers import moving_frames, write_clip
from vidgen.cli import app
from vidgen.errors import OutputLockedError
from vidgen.files import output_lock

runner = CliRunner()

TINY = ["--arch", "ifnet", "--crop", "32", "--batch-size", "2", "--lr", "1e-3", "--warmup", "1", "--log-every", "1",
        "--val-every", "2", "--save-every", "2", "--val-windows", "2", "--quiet"]
NOT_EMPTY_HINT = "--resume to continue it, --overwrite to replace it, or another --out"
REPAIR_HINT = "start a new run with --overwrite, or restore the file"


def _footage(root: Path) -> tuple[Path, Path, Path]:
    data, val = root / "data", root / "val"
    data.mkdir(parents=True)
    val.mkdir()
    for i in range(2):
        write_clip(data / f"train{i}.mp4", moving_frames(8, width=64, height=64, seed=i))
    write_clip(val / "val.mp4", moving_frames(6, width=64, height=64, seed=7))
    config = root / "run.toml"
    config.write_text("[model]\nchannels = 8\n")
    return data, val, config


def _train(*args: str) -> object:
    return runner.invoke(app, ["train", "interpolate", *args])


def _new_run(footage: tuple[Path, Path, Path], out: Path, *extra: str) -> object:
    data, val, config = footage
    return _train("--data", str(data), "--val", str(val), "--config", str(config), "--out", str(out), *TINY, *extra)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _error_line(result: object) -> str:
    """The command's whole output, checked to be exactly one `error:` line without terminal codes."""
    lines = result.output.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output  # type: ignore[attr-defined]
    assert "\x1b" not in lines[0] and "Traceback" not in lines[0]
    return lines[0]


def _losses(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


class Foreign:
    """A class a pickle may name: a state file holding one must be refused, never unpickled."""


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _footage(tmp_path_factory.mktemp("footage"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, footage: tuple[Path, Path, Path]) -> Path:
    """A 2-step run with a checkpoint, trained once for the module; tests copy it (`run` fixture)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDGEN_HOME", str(tmp_path_factory.mktemp("home")))
        patch.setenv("VIDGEN_OFFLINE", "1")
        result = _new_run(footage, run, "--steps", "2")
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def run(tmp_path: Path, finished_run: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


# --- 1. a new run never replaces an existing one unless told to ---------------------------------------------


def test_new_run_refuses_a_folder_holding_a_run_before_reading_data(run: Path, footage: tuple[Path, Path, Path],
                                                                    tmp_path: Path) -> None:
    before = _snapshot(run)
    for extra in ([], ["--arch", "frame-interp-net"]):  # even another architecture would have replaced it
        result = _new_run(footage, run, "--steps", "1", *extra)
        assert result.exit_code == 2
        line = _error_line(result)
        assert f"--out {run} holds a training run" in line and NOT_EMPTY_HINT in line
    # Checked before any footage is read: a --data that does not exist is not what it reports.
    result = _train("--arch", "ifnet", "--data", str(tmp_path / "missing"), "--out", str(run))
    assert result.exit_code == 2 and "holds a training run" in _error_line(result)
    assert _snapshot(run) == before

    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    result = _new_run(footage, other, "--steps", "1")
    line = _error_line(result)
    assert result.exit_code == 2 and f"--out {other} is not empty and not a run folder" in line
    assert "choose another --out" in line
    assert [p.name for p in other.iterdir()] == ["todo.txt"]


def test_overwrite_starts_fresh_without_any_file_of_the_old_run(run: Path, footage: tuple[Path, Path, Path],
                                                                 tmp_path: Path) -> None:
    """The replaced run's folder ends up exactly as a new folder would: config, split, metrics, weights, state
    of the new run only (the old cache and TensorBoard logs are gone), with the same weights bit for bit."""
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out.tfevents.old").write_bytes(b"old run")
    assert (run / "cache").is_dir() and _losses(run)[-1]["step"] == 2
    new = ["--steps", "1", "--no-cache", "--seed", "5"]
    result = _new_run(footage, run, *new, "--overwrite")
    assert result.exit_code == 0, result.output
    fresh = tmp_path / "fresh"
    assert _new_run(footage, fresh, *new).exit_code == 0

    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in fresh.iterdir())
    assert not (run / "cache").exists() and not (run / "tensorboard").exists()
    assert [r["step"] for r in _losses(run)] == [1]
    assert "steps = 1" in (run / "config.toml").read_text() and "seed = 5" in (run / "config.toml").read_text()
    for tag in ("last", "best"):
        a, b = load_file(str(run / f"{tag}.safetensors")), load_file(str(fresh / f"{tag}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(run / "last.state.pt", weights_only=True)["run"]["step"] == 1


def test_overwrite_keeps_the_old_run_when_the_new_one_is_refused(run: Path, footage: tuple[Path, Path, Path],
                                                                  tmp_path: Path) -> None:
    before = _snapshot(run)
    # Bad options or data: refused before the new run writes anything, so the old run stays whole.
    result = _train("--arch", "ifnet", "--data", str(tmp_path / "missing"), "--out", str(run), "--overwrite")
    assert result.exit_code == 2 and "does not exist" in _error_line(result)
    result = _new_run(footage, run, "--crop", "40", "--overwrite")
    assert result.exit_code == 2 and "multiple of 32" in _error_line(result)
    result = _train("--out", str(run), "--resume", "--overwrite")
    assert result.exit_code == 2 and "--resume and --overwrite" in _error_line(result)
    assert _snapshot(run) == before

    # --overwrite replaces a run folder, never a folder that holds something else.
    (run / "holiday.mp4").write_bytes(b"not a run's")
    result = _new_run(footage, run, "--overwrite")
    assert result.exit_code == 2
    line = _error_line(result)
    assert f"--overwrite {run}" in line and "'holiday.mp4'" in line
    assert _snapshot(run) == {**before, "holiday.mp4": b"not a run's"}


# --- 2. one training per run folder ------------------------------------------------------------------------


def test_second_training_on_a_run_folder_in_use_fails_at_once(run: Path, footage: tuple[Path, Path, Path]) -> None:
    before = _snapshot(run)
    with output_lock(run):  # what a training on this folder holds
        result = _train("--out", str(run), "--resume", "--steps", "4", "--quiet")
        assert result.exit_code == 1
        line = _error_line(result)
        assert f"run folder {run}: another vidgen run is writing it (process {os.getpid()})" in line
        result = _new_run(footage, run, "--overwrite")
        assert result.exit_code == 1 and f"run folder {run}: another vidgen run" in _error_line(result)
    assert _snapshot(run) == before
    assert not (run.parent / f".{run.name}.vidgen-lock").exists()


def test_training_holds_the_run_folder_lock_until_it_ends(tmp_path: Path, footage: tuple[Path, Path, Path]) -> None:
    from vidgen.train.config import build_config
    from vidgen.tasks import train

    data, val, _ = footage
    out = tmp_path / "run"
    locked: list[bool] = []

    def try_lock(step: int) -> bool:
        try:
            output_lock(out).acquire().release()
        except OutputLockedError:
            locked.append(True)
        else:
            locked.append(False)
        return False

    options = {"arch": "ifnet", "data": data, "val": val, "out": out, "crop": 32, "batch_size": 2, "steps": 2,
               "warmup": 1, "val_windows": 2, "model": {"channels": 8}}
    train(build_config("interpolate", {}, options), progress=False, should_stop=try_lock)
    assert locked == [True, True]
    with output_lock(out):  # free again, and no lock file left behind
        pass
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".vidgen-lock")]


# --- 3. a run that fails before its first checkpoint leaves nothing ----------------------------------------------


def test_run_failing_on_its_data_leaves_no_folder(tmp_path: Path, footage: tuple[Path, Path, Path]) -> None:
    _, val, config = footage
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.mp4").write_bytes(b"not a video")
    out = tmp_path / "runs" / "new" / "run"
    result = _train("--data", str(broken), "--val", str(val), "--config", str(config), "--out", str(out), *TINY)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "runs").exists()  # the run folder and the parents it made

    empty = tmp_path / "empty"  # a folder that was there, empty: stays, empty
    empty.mkdir()
    result = _train("--data", str(broken), "--val", str(val), "--config", str(config), "--out", str(empty), *TINY)
    assert result.exit_code == 2 and empty.is_dir() and not list(empty.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "empty"]


def test_run_failing_or_interrupted_at_step_0_leaves_no_folder(tmp_path: Path, footage: tuple[Path, Path, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from vidgen.tasks.interpolate.train_task import InterpolateTask

    def fail(*args: object) -> None:
        raise RuntimeError("boom at step 0")

    monkeypatch.setattr(InterpolateTask, "loss", fail)
    result = _new_run(footage, tmp_path / "failed")
    assert result.exit_code == 1 and "boom at step 0" in _error_line(result)
    assert not (tmp_path / "failed").exists()

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(InterpolateTask, "loss", interrupt)  # Ctrl-C before the first optimizer step
    result = _new_run(footage, tmp_path / "stopped")
    assert result.exit_code == 130
    line = _error_line(result)
    assert "interrupted before the first checkpoint" in line and "--resume" not in line
    assert not (tmp_path / "stopped").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_run_failing_after_its_first_checkpoint_keeps_its_folder(tmp_path: Path, footage: tuple[Path, Path, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from vidgen.tasks.interpolate.train_task import InterpolateTask

    loss = InterpolateTask.loss
    calls = {"n": 0}

    def fail_on_third(self: object, *args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom at step 3")
        return loss(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(InterpolateTask, "loss", fail_on_third)
    out = tmp_path / "run"
    result = _new_run(footage, out, "--steps", "4")  # saves at step 2
    assert result.exit_code == 1 and "boom at step 3" in _error_line(result)
    assert {"config.toml", "last.safetensors", "last.state.pt", "metrics.jsonl"} <= {p.name for p in out.iterdir()}
    monkeypatch.setattr(InterpolateTask, "loss", loss)
    result = _train("--out", str(out), "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in _losses(out)] == [1, 2, 3, 4]


# --- 4. damaged run files on --resume: one line naming the file ----------------------------------------------


def test_damaged_state_file_on_resume_is_one_line_naming_it(run: Path, tmp_path: Path) -> None:
    from vidgen.registry.archs import get_arch

    state = run / "last.state.pt"
    good = state.read_bytes()
    saved = torch.load(state, weights_only=True)

    other_arch = {**saved, "model": get_arch("ifnet").build(channels=16).state_dict()}
    damages = {
        "cut short": lambda: state.write_bytes(good[: len(good) // 2]),
        "empty": lambda: state.write_bytes(b""),
        "not a file torch.save wrote": lambda: state.write_text("hello, I am text"),
        "Python objects": lambda: torch.save({"model": Foreign()}, state),
        "no optimizer": lambda: torch.save({k: v for k, v in saved.items() if k != "optimizer"}, state),
        "model does not fit": lambda: torch.save(other_arch, state),
        "run counters": lambda: torch.save({**saved, "run": {"step": "two"}}, state),
    }
    for expected, damage in damages.items():
        damage()
        result = _train("--out", str(run), "--resume", "--steps", "3", "--quiet")
        assert result.exit_code == 1, (expected, result.output)
        line = _error_line(result)
        assert line.startswith(f"error: {state}: damaged or not a vidgen training state ("), line
        assert expected in line and REPAIR_HINT in line, line
    state.write_bytes(good)
    result = _train("--out", str(run), "--resume", "--steps", "3", "--quiet")
    assert result.exit_code == 0, result.output


def test_damaged_weights_config_or_split_on_resume_is_one_line_naming_it(run: Path) -> None:
    files = {name: (run / name).read_bytes() for name in ("last.safetensors", "best.safetensors", "config.toml",
                                                          "split.json")}
    weights = run / "last.safetensors"
    damages = [
        ("last.safetensors", lambda: weights.write_bytes(files["last.safetensors"][:-40]), 1,
         "damaged or not weights vidgen train wrote"),
        ("best.safetensors", lambda: (run / "best.safetensors").write_bytes(b"\x00" * 64), 1,
         "damaged or not weights vidgen train wrote"),
        ("config.toml", lambda: (run / "config.toml").write_text("arch = \"ifnet\nsteps = ]"), 1,
         "damaged or not a vidgen run configuration (not valid TOML"),
        ("config.toml", lambda: (run / "config.toml").write_text('task = "interpolate"\narch = "ifnet"\nsteps = "x"\n'),
         1, "damaged or not a vidgen run configuration (steps = 'x' is not a whole number)"),
        ("config.toml", lambda: (run / "config.toml").write_text('task = "interpolate"\nsteps = 2\n'),
         1, "damaged or not a vidgen run configuration (no arch in it)"),
        ("split.json", lambda: (run / "split.json").write_text('{"train": ['), 1, "damaged or not a vidgen run's split"),
    ]
    for name, damage, code, expected in damages:
        damage()
        result = _train("--out", str(run), "--resume", "--steps", "3", "--quiet")
        assert result.exit_code == code, (name, result.output)
        line = _error_line(result)
        assert f"{run / name}: {expected}" in line and REPAIR_HINT in line, line
        (run / name).write_bytes(files[name])
    result = _train("--out", str(run), "--resume", "--steps", "3", "--quiet")
    assert result.exit_code == 0, result.output


def test_resume_of_a_folder_without_a_checkpoint_says_what_to_do(run: Path, tmp_path: Path) -> None:
    (run / "last.state.pt").unlink()  # what a failed run of an older vidgen left
    result = _train("--out", str(run), "--resume")
    assert result.exit_code == 2
    line = _error_line(result)
    assert f"nothing to resume: {run / 'last.state.pt'} does not exist" in line and "--overwrite" in line
    result = runner.invoke(app, ["train", "reconstruct", "--out", str(run), "--resume"])
    assert result.exit_code == 2 and "is a interpolate run, not reconstruct" in _error_line(result)


# --- 5. temporaries of killed runs are swept; half-written records are dropped -----------------------------------


def test_killed_runs_temporaries_are_swept_and_its_half_written_metrics_line_dropped(run: Path) -> None:
    dead = _dead_pid()
    litter = [run / f".last.safetensors.vidgen-tmp-{dead}-0badc0de.safetensors",
              run / "cache" / f".train0-0123456789abcdef.npy.vidgen-tmp-{dead}-0badc0de.npy"]
    for path in litter:
        path.write_bytes(b"half written")
    with (run / "metrics.jsonl").open("a") as out:  # killed in the middle of appending a record
        out.write('{"step": 3, "epoch": 0, "lo')
    result = _train("--out", str(run), "--resume", "--steps", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in litter)
    assert [r["step"] for r in _losses(run)] == [1, 2, 3]
    assert not [p for p in run.rglob("*") if ".vidgen-tmp-" in p.name]


def test_frame_cache_is_written_under_temporary_names_that_name_their_process(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed while caching frames leaves a temporary the next run can tell is dead and sweep."""
    import vidgen.train.video_index as data_module
    from vidgen.files import owner_pid

    clip = write_clip(tmp_path / "clip.mp4", moving_frames(4))
    cache = tmp_path / "cache"
    seen: list[list[str]] = []
    convert = data_module.frame_to_rgb

    def spy(*args: object, **kwargs: object) -> object:
        seen.append([name for name in os.listdir(cache) if name.startswith(".")])
        return convert(*args, **kwargs)

    monkeypatch.setattr(data_module, "frame_to_rgb", spy)
    data_module.index_video(clip, cache_dir=cache)
    temporaries = {name for names in seen for name in names}
    assert temporaries and all(owner_pid(name) == os.getpid() for name in temporaries)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]


def test_resume_purges_tensorboard_events_after_the_checkpoint(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writers: list[dict] = []

    class SummaryWriter:
        def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
            writers.append({"log_dir": log_dir, "purge_step": purge_step})

        def add_scalar(self, *args: object) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter))
    result = _train("--out", str(run), "--resume", "--steps", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert writers == [{"log_dir": str(run / "tensorboard"), "purge_step": 3}]  # resumed at step 2

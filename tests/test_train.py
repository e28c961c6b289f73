"""`vidgen train`: the trainer end to end on tiny clips, exact resume, DDP vs one process, models add/remove."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from helpers import moving_frames, write_clip
from vidgen.cli import app

runner = CliRunner()

# A small IFNet (no dropout, so several processes compute what one does) at the smallest crop it takes.
TINY_IFNET = ["--arch", "ifnet", "--crop", "32", "--batch-size", "2", "--lr", "1e-3", "--warmup", "1",
              "--log-every", "1", "--val-every", "2", "--save-every", "2", "--quiet"]


def _footage(root: Path) -> tuple[Path, Path]:
    data, val = root / "data", root / "val"
    (data / "shots").mkdir(parents=True)
    val.mkdir()
    for i in range(2):
        write_clip(data / "shots" / f"train{i}.mp4", moving_frames(10, width=64, height=64, seed=i))
    write_clip(val / "val.mp4", moving_frames(8, width=64, height=64, seed=7))
    return data, val


def _config_file(path: Path, **extra: object) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n[model]\nchannels = 8\n")
    return path


def _train(*args: str) -> object:
    result = runner.invoke(app, ["train", "interpolate", *args])
    return result


def _losses(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.fixture
def footage(tmp_path: Path) -> tuple[Path, Path]:
    return _footage(tmp_path)


def test_train_without_arch_lists_architectures() -> None:
    result = _train()
    assert result.exit_code == 0, result.output
    for arch in ("ifnet", "frame-interp-net", "frame-interp-attn", "keyframe-interp"):
        assert arch in result.output
    assert "classical-flow" not in result.output  # nothing to train


def test_train_writes_run_folder_with_config_split_metrics_weights(tmp_path: Path, footage: tuple[Path, Path]) -> None:
    data, val = footage
    run = tmp_path / "run"
    config = _config_file(tmp_path / "run.toml", steps=4, seed=3)
    result = _train("--data", str(data), "--val", str(val), "--out", str(run), "--config", str(config),
                    "--steps", "3", *TINY_IFNET, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3  # the command line beats the config file
    saved = (run / "config.toml").read_text()
    assert "steps = 3" in saved and "seed = 3" in saved and "channels = 8" in saved
    split = json.loads((run / "split.json").read_text())
    assert split["val"] == ["../val/val.mp4"] or len(split["val"]) == 1
    assert len(split["train"]) == 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    assert {"val_psnr", "val_blend_psnr"} <= set(next(r for r in records if "val_psnr" in r))
    for tag in ("best", "last"):
        weights = load_file(str(run / f"{tag}.safetensors"))
        assert "block0.conv0.0.0.weight" in weights or any(k.startswith("block0") for k in weights)
    assert (run / "last.state.pt").is_file()


def test_bad_options_give_one_line_errors(tmp_path: Path, footage: tuple[Path, Path]) -> None:
    data, val = footage
    result = _train("--arch", "ifnet", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "does not exist" in result.output
    result = _train("--arch", "ifnet", "--data", str(data), "--out", str(tmp_path / "r"), "--crop", "40")
    assert result.exit_code == 2 and "multiple of 32" in result.output
    result = _train("--arch", "ifnet", "--data", str(data), "--val", str(data), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "held out" in result.output
    result = _train("--out", str(tmp_path / "never-ran"), "--resume")
    assert result.exit_code == 2 and "nothing to resume" in result.output
    result = _train("--arch", "blend", "--data", str(data), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    result = _train("--arch", "ifnet", "--data", str(data), "--out", str(tmp_path / "r"), "--color-jitter", "0.7")
    assert result.exit_code == 2 and "--color-jitter must be in [0, 0.5]" in result.output


def test_resume_continues_exactly_where_an_interrupted_run_stopped(tmp_path: Path,
                                                                   footage: tuple[Path, Path]) -> None:
    """Interrupted at step 3 and resumed to 6, the loss curve and weights equal an uninterrupted run."""
    from vidgen.train.config import build_config, read_saved_config, resume_config
    from vidgen.tasks import train

    data, val = footage
    # frame-interp-net has dropout: the resumed run must restore the RNG state to match.
    options = {"arch": "frame-interp-net", "data": data, "val": val, "crop": 32, "batch_size": 2, "steps": 6,
               "warmup": 2, "log_every": 1, "val_every": 2, "save_every": 100, "lr": 1e-3}
    whole = tmp_path / "whole"
    train(build_config("interpolate", {}, {**options, "out": whole}), progress=False)

    parted = tmp_path / "parted"
    with pytest.raises(KeyboardInterrupt):
        train(build_config("interpolate", {}, {**options, "out": parted}), progress=False,
              should_stop=lambda step: step == 3)
    assert len(_losses(parted)) == 3
    resumed = resume_config(read_saved_config(parted / "config.toml"), {"out": parted})
    train(resumed, resume=True, progress=False)

    assert _losses(parted) == _losses(whole)
    for tag in ("last", "best"):
        a, b = load_file(str(whole / f"{tag}.safetensors")), load_file(str(parted / f"{tag}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_minutes_budget_stops_on_time_with_decayed_lr_and_resumes_with_more(tmp_path: Path,
                                                                           footage: tuple[Path, Path]) -> None:
    """--minutes: the run stops once the budget is spent, the cosine has reached 0, best/last are written;
    --resume with a larger budget continues from the saved time instead of starting the clock again."""
    data, val = footage
    run = tmp_path / "run"
    result = _train("--data", str(data), "--val", str(val), "--out", str(run), "--minutes", "0.03",
                    *TINY_IFNET, "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss" in r]
    assert losses[-1]["seconds"] >= 1.8 and losses[-1]["lr"] < 1e-4  # 0.03 min = 1.8 s, lr decayed from 1e-3
    assert losses[0]["lr"] > 5e-4
    assert (run / "best.safetensors").is_file() and (run / "last.safetensors").is_file()
    steps = json.loads(result.stdout.strip().splitlines()[-1])["steps"]
    assert steps == losses[-1]["step"] >= 2

    result = _train("--out", str(run), "--resume", "--minutes", "0.06", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    more = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert more[-1]["seconds"] >= 3.6 and json.loads(result.stdout.strip().splitlines()[-1])["steps"] > steps

    result = _train("--data", str(data), "--out", str(tmp_path / "r2"), "--arch", "ifnet", "--steps", "3",
                    "--minutes", "1")
    assert result.exit_code == 2 and "exclusive" in result.output


def test_resume_refuses_changed_options(tmp_path: Path, footage: tuple[Path, Path]) -> None:
    data, val = footage
    run = tmp_path / "run"
    config = _config_file(tmp_path / "run.toml")
    assert _train("--data", str(data), "--val", str(val), "--out", str(run), "--config", str(config),
                  "--steps", "2", *TINY_IFNET).exit_code == 0
    result = _train("--out", str(run), "--resume", "--lr", "0.5")
    assert result.exit_code == 2 and "lr" in result.output
    result = _train("--out", str(run), "--resume", "--steps", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(_losses(run)) == 3


def test_trained_model_is_added_used_and_removed(tmp_path: Path, footage: tuple[Path, Path]) -> None:
    data, val = footage
    run = tmp_path / "run"
    config = _config_file(tmp_path / "run.toml")
    assert _train("--data", str(data), "--val", str(val), "--out", str(run), "--config", str(config),
                  "--steps", "2", *TINY_IFNET).exit_code == 0

    added = runner.invoke(app, ["models", "add", "mine", "--from", str(run), "--json"])
    assert added.exit_code == 0, added.output
    entry = json.loads(added.stdout)
    assert entry["name"] == "ifnet.mine" and entry["aliases"] == ["mine"] and entry["config"]["channels"] == 8
    listed = runner.invoke(app, ["models", "list", "--task", "interpolate"])
    assert "ifnet.mine" in listed.output

    clip = write_clip(tmp_path / "clip.mp4", moving_frames(5, width=64, height=64))
    out = tmp_path / "smooth.mp4"
    result = runner.invoke(app, ["interpolate", str(clip), "-o", str(out), "--model", "mine", "--quiet"])
    assert result.exit_code == 0, result.output
    assert out.is_file()

    again = runner.invoke(app, ["models", "add", "mine", "--from", str(run)])
    assert again.exit_code == 2 and "already exists" in again.output
    assert runner.invoke(app, ["models", "add", "mine", "--from", str(run), "--replace"]).exit_code == 0

    removed = runner.invoke(app, ["models", "remove", "mine"])
    assert removed.exit_code == 0, removed.output
    gone = runner.invoke(app, ["interpolate", str(clip), "-o", str(tmp_path / "x.mp4"), "--model", "mine"])
    assert gone.exit_code != 0 and "unknown model" in gone.output
    shipped = runner.invoke(app, ["models", "remove", "rife"])
    assert shipped.exit_code == 2 and "ships with vidgen" in shipped.output


def test_add_weights_file_and_fine_tune_from_it(tmp_path: Path, footage: tuple[Path, Path]) -> None:
    """`--weights --arch` registers a checkpoint; `--init` fine-tunes from a registry model."""
    from vidgen.registry.archs import get_arch

    model = get_arch("ifnet").build(channels=8)
    checkpoint = tmp_path / "flownet.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, checkpoint)  # upstream's layout
    bad = runner.invoke(app, ["models", "add", "wrong", "--weights", str(checkpoint), "--arch", "ifnet"])
    assert bad.exit_code == 2 and "does not fit" in bad.output  # default channels=90
    added = runner.invoke(app, ["models", "add", "base", "--weights", str(checkpoint), "--arch", "ifnet",
                                "--config", '{"channels": 8}', "--license", "MIT"])
    assert added.exit_code == 0, added.output

    data, val = footage
    run = tmp_path / "tuned"
    result = _train("--data", str(data), "--val", str(val), "--out", str(run), "--init", "base", "--steps", "1",
                    *TINY_IFNET)
    assert result.exit_code == 0, result.output
    tuned = load_file(str(run / "last.safetensors"))
    start = model.state_dict()
    assert set(tuned) == set(start)
    assert any(not torch.equal(tuned[k], start[k]) for k in start)  # it trained from there

    # A weights file `vidgen train` wrote (e.g. copied back from a GPU machine) names its own arch and config.
    moved = tmp_path / "elsewhere.safetensors"
    moved.write_bytes((run / "last.safetensors").read_bytes())
    added = runner.invoke(app, ["models", "add", "moved", "--weights", str(moved), "--json"])
    assert added.exit_code == 0, added.output
    entry = json.loads(added.stdout)
    assert entry["arch"] == "ifnet" and entry["config"]["channels"] == 8
    bare = runner.invoke(app, ["models", "add", "bare", "--weights", str(checkpoint)])
    assert bare.exit_code == 2 and "--arch" in bare.output


def test_distributed_two_processes_match_one(tmp_path: Path, footage: tuple[Path, Path]) -> None:
    """torchrun --nproc-per-node 2 (gloo, CPU) with batch 2 each equals one process with batch 4."""
    data, val = footage
    config = _config_file(tmp_path / "run.toml")
    common = ["train", "interpolate", "--data", str(data), "--val", str(val), "--config", str(config),
              "--steps", "2", *[a for a in TINY_IFNET if a != "--quiet"], "--quiet", "--device", "cpu"]

    def batch(args: list[str], size: int) -> list[str]:
        args = list(args)
        args[args.index("--batch-size") + 1] = str(size)
        return args

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"
    subprocess.run([sys.executable, "-m", "vidgen", *batch(common, 4), "--out", str(single)],
                   check=True, env=env, timeout=300)
    double = tmp_path / "ddp"
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
         "-m", "vidgen", *batch(common, 2), "--out", str(double)],
        env=env, timeout=300, capture_output=True, text=True,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    a, b = load_file(str(single / "last.safetensors")), load_file(str(double / "last.safetensors"))
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    assert len(_losses(double)) == 2  # rank 0 alone logs

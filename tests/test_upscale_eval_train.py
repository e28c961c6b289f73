"""`vidgen eval upscale`, `vidgen train upscale` and SR models users bring (`vidgen models add`, spandrel)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import moving_frames, run_cli, write_clip
from safetensors.torch import save_file

from vidgen.metrics.quality import psnr
from vidgen.models.resize import resize_frames
from vidgen.tasks.upscale.evaluate import MotionReference, temporal_scores
from vidgen.video.reader import read_rgb_frames


def test_eval_scores_each_model_beside_bicubic_and_lanczos(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mkv", moving_frames(6, 66, 50), codec="ffv1", pix_fmt="yuv444p", options={})
    result = run_cli("eval", "upscale", str(clip), "--model", "bicubic", "--factor", "2", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["model"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert list(rows) == ["resize.bicubic", "resize.lanczos"]  # the baselines once each
    originals = [f[:50, :66] for f in read_rgb_frames(clip)]
    small = resize_frames(np.stack(originals), 25, 33, "area")
    expected = np.mean([psnr(o, u) for o, u in zip(originals, resize_frames(small, 50, 66, "bicubic"))])
    bicubic = rows["resize.bicubic"]
    assert bicubic["frames"] == 6 and bicubic["psnr"] == pytest.approx(expected, abs=1e-3)
    assert 0 < bicubic["flicker"] and bicubic["warp_error_original"] > 0 and bicubic["ms_per_frame"] >= 0


def test_temporal_scores_see_flicker_the_original_does_not_have() -> None:
    rng = np.random.default_rng(0)
    frames = moving_frames(2, 96, 64)
    sampling, valid = MotionReference().between(0, frames[0], frames[1])
    assert valid.mean() > 0.8
    steady = temporal_scores((frames[0], frames[0]), (frames[1], frames[1]), sampling, valid)
    assert steady[2] == 0 and steady[0] == steady[1]
    noisy = [np.clip(f.astype(int) + rng.integers(-8, 9, f.shape), 0, 255).astype(np.uint8) for f in frames]
    flickering = temporal_scores((frames[0], noisy[0]), (frames[1], noisy[1]), sampling, valid)
    assert flickering[2] > 3 and flickering[0] > steady[0]


def test_training_a_video_model_through_the_cli(tmp_path: Path) -> None:
    data, val = tmp_path / "data", tmp_path / "val"
    data.mkdir(), val.mkdir()
    write_clip(data / "a.mp4", moving_frames(10, 64, 48, seed=1))
    write_clip(val / "b.mp4", moving_frames(6, 64, 48, seed=2))
    config = tmp_path / "run.toml"
    config.write_text("[model]\nchannels = 4\nblocks = 1\n")
    run = tmp_path / "run"
    result = run_cli("train", "upscale", "--arch", "vsr", "--data", str(data), "--val", str(val), "--out", str(run),
                     "--steps", "3", "--batch-size", "2", "--crop", "32", "--val-crop", "32", "--window", "3",
                     "--val-every", "3", "--workers", "0", "--config", str(config), "--task-option", "scale=2",
                     "--task-option", "blur=1", "--task-option", "noise=1", "--task-option", "compress=1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 3 and summary["metric"] == "psnr" and summary["baseline_val"] > 20
    assert (run / "best.safetensors").is_file()
    assert run_cli("models", "add", "mine", "--from", str(run)).returncode == 0
    out = tmp_path / "up.mp4"
    upscaled = run_cli("upscale", str(val / "b.mp4"), "-m", "mine", "-o", str(out), "--json")
    assert upscaled.returncode == 0, upscaled.stderr
    assert json.loads(upscaled.stdout)["output_size"] == "128x96"  # the task's scale=2 went into the model


def test_the_task_degrades_each_sample_alike_across_its_frames() -> None:
    from vidgen.tasks.upscale.train_task import UpscaleTask

    task = UpscaleTask(scale=2, kernels="area", noise=1.0)
    clean = torch.rand(2, 3, 3, 8, 8).expand(2, 3, 3, 8, 8).contiguous()
    clean[:, 1:] = clean[:, :1]  # a still shot
    small = task.degrade(clean, torch.Generator().manual_seed(0))
    assert small.shape == (2, 3, 3, 4, 4)
    noise = small - torch.nn.functional.avg_pool2d(clean.flatten(0, 1), 2).unflatten(0, (2, 3))
    assert noise.abs().mean() > 0  # noise was added


# --- models users bring: spandrel detects the architecture and the scale -------------------------------------

def test_any_sr_checkpoint_spandrel_knows_is_detected_and_runs(tmp_path: Path) -> None:
    pytest.importorskip("spandrel")
    from vidgen.models.rrdbnet import build_rrdbnet
    from vidgen.models.srvgg import build_srvgg

    torch.manual_seed(0)
    save_file(build_srvgg(num_feat=8, num_conv=2, upscale=2).state_dict(), str(tmp_path / "compact.safetensors"))
    torch.save({"params_ema": build_rrdbnet(num_feat=8, num_block=1, num_grow_ch=32).state_dict()},
               str(tmp_path / "esrgan.pth"))
    compact = run_cli("models", "add", "compact", "--weights", str(tmp_path / "compact.safetensors"), "--json")
    esrgan = run_cli("models", "add", "esrgan", "--weights", str(tmp_path / "esrgan.pth"), "--license", "MIT",
                     "--json")
    assert compact.returncode == 0 and esrgan.returncode == 0, compact.stderr + esrgan.stderr
    assert json.loads(compact.stdout)["config"] == {"architecture": "Compact", "scale": 2}
    entry = json.loads(esrgan.stdout)
    assert (entry["arch"], entry["task"], entry["config"]) == ("spandrel", "upscale", {"architecture": "ESRGAN", "scale": 4})
    clip = write_clip(tmp_path / "in.mp4", moving_frames(3))
    result = run_cli("upscale", str(clip), "-m", "esrgan", "-o", str(tmp_path / "out.mp4"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output_size"] == "256x192"


def test_a_pickle_with_code_or_a_model_that_is_not_sr_is_refused_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("spandrel")

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"state_dict": Payload()}, str(tmp_path / "evil.pth"))
    refused = run_cli("models", "add", "evil", "--weights", str(tmp_path / "evil.pth"))
    assert refused.returncode == 1 and "not a plain weights file" in refused.stderr
    assert "this must never run" not in refused.stdout + refused.stderr
    save_file({"weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    unknown = run_cli("models", "add", "other", "--weights", str(tmp_path / "other.safetensors"))
    assert unknown.returncode == 2 and "not an architecture spandrel knows" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    listed = run_cli("models", "list", "--task", "upscale", "--json")
    assert not any(json.loads(line)["name"].startswith("spandrel.") for line in listed.stdout.splitlines())


def test_the_shipped_default_is_vsr_small_and_beats_bicubic_on_real_footage_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vsr.small`, the default of upscale, shipped in the package: no network, and above bicubic and Lanczos at
    x4 on footage it never saw (the example clip shrunk by area to 160x90 and brought back: 27.43 dB against
    bicubic's 27.03 on these 8 frames; on Big Buck Bunny 720p it is 1.09 dB above)."""
    monkeypatch.setenv("VIDGEN_OFFLINE", "1")
    example = Path(__file__).resolve().parents[1] / "examples" / "bbb_360p.mp4"
    result = run_cli("eval", "upscale", str(example), "--factor", "4", "--max-frames", "8", "--json",
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    rows = {row["model"]: row for row in map(json.loads, result.stdout.strip().splitlines())}
    assert set(rows) == {"vsr.small", "resize.bicubic", "resize.lanczos"}  # the default, beside the baselines
    assert rows["vsr.small"]["psnr"] > rows["resize.bicubic"]["psnr"] + 0.25
    assert rows["vsr.small"]["psnr"] > rows["resize.lanczos"]["psnr"]

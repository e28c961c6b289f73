"""vidgen's own interpolation: candidates from two engines, combined per pixel (`mix`, `ensemble`)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from helpers import moving_frames, run_cli, write_clip
from vidgen import paths
from vidgen.models.ensemble import EnsembleNet
from vidgen.tasks.interpolate.engines import CombinedEngine
from vidgen.tasks.interpolate.job import load_engine

# Candidates that need no downloads: the cross-fade and the fast classical flow engine.
OVERLAY = """
[models."mix.test"]
task = "interpolate"
arch = "mix"
license = "MIT"
description = "test: blend and fast flow, averaged"
config = { network = "blend", flow = "fast" }
"""


@pytest.fixture
def test_mix() -> str:
    paths.user_registry_path().parent.mkdir(parents=True, exist_ok=True)
    paths.user_registry_path().write_text(OVERLAY)
    return "mix.test"


def pair(height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    frames = moving_frames(5, width=width, height=height)
    return np.stack([frames[0]]), np.stack([frames[4]])


def test_mix_is_the_average_of_its_candidates(test_mix: str) -> None:
    name, engine = load_engine(test_mix, "cpu")
    assert name == "mix.test" and isinstance(engine, CombinedEngine)
    frames0, frames1 = pair()
    times = [0.25, 0.5, 0.75]
    _, blend = load_engine("blend", "cpu")
    _, fast = load_engine("fast", "cpu")
    expected = np.rint((blend.interpolate(frames0, frames1, times).astype(np.float64)
                        + fast.interpolate(frames0, frames1, times)) / 2)
    difference = engine.interpolate(frames0, frames1, times).astype(int) - expected.astype(int)
    assert np.abs(difference).max() <= 1 and (difference != 0).mean() < 0.02  # float32 rounding of exact halves


def test_an_untrained_ensemble_is_the_plain_average_at_any_size(test_mix: str) -> None:
    _, mix = load_engine(test_mix, "cpu")
    ensemble = CombinedEngine(mix.candidates, EnsembleNet(widths=(8, 8, 8), detail=4).eval(), "cpu", 16)
    frames0, frames1 = pair(height=50, width=70)  # not multiples of 16: padded and cropped
    times = [1 / 3, 0.5]
    made = ensemble.interpolate(frames0, frames1, times)
    assert made.shape == (1, 2, 50, 70, 3)
    assert np.abs(made.astype(int) - mix.interpolate(frames0, frames1, times).astype(int)).max() <= 1


def test_the_ensemble_learns_per_pixel_weights_and_a_residual() -> None:
    """Trained to prefer the second candidate, its output moves there; weights are a softmax (a convex blend)."""
    torch.manual_seed(0)
    net = EnsembleNet(widths=(8, 8, 8), detail=4)
    candidates, confidence = torch.rand(2, 2, 3, 32, 32), torch.rand(2, 2, 32, 32)
    img0, img1, t = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.tensor([0.25, 0.75])
    target = candidates[:, 1]
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    start = (net(candidates, confidence, img0, img1, t) - target).abs().mean().item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = (net(candidates, confidence, img0, img1, t) - target).abs().mean()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * start
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.rand(1, 2, 3, 30, 32), torch.rand(1, 2, 30, 32), torch.rand(1, 3, 30, 32), torch.rand(1, 3, 30, 32),
            torch.tensor([0.5]))


def test_train_an_ensemble_add_it_and_interpolate_with_it(tmp_path: Path) -> None:
    """`vidgen train interpolate --arch ensemble` (any time t from windows of 5), `models add`, then the
    model through `vidgen interpolate` and `vidgen eval interpolate` like any other."""
    data, val = tmp_path / "data", tmp_path / "val"
    for folder, seeds in ((data, (0, 1)), (val, (2,))):
        folder.mkdir()
        for seed in seeds:
            write_clip(folder / f"c{seed}.mp4", moving_frames(12, 96, 64, seed=seed))
    config = tmp_path / "run.toml"
    config.write_text('[model]\nnetwork = "blend"\nflow = "fast"\nwidths = [8, 8, 8]\ndetail = 4\n')
    run = tmp_path / "run"
    trained = run_cli("train", "interpolate", "--arch", "ensemble", "--config", str(config), "--data", str(data),
                      "--val", str(val), "--out", str(run), "--steps", "3", "--window", "5", "--crop", "32",
                      "--val-crop", "64", "--batch-size", "2", "--val-every", "3", "--workers", "0", "--json")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout.splitlines()[-1])["steps"] == 3
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_psnr", "val_blend_psnr", "val_mix_psnr"} <= set(record)
    assert run_cli("models", "add", "ens", "--from", str(run)).returncode == 0
    clip = write_clip(tmp_path / "in.mkv", moving_frames(5, 70, 50), codec="ffv1", options={})
    out = tmp_path / "out.mkv"
    made = run_cli("interpolate", str(clip), "--x4", "-m", "ens", "--codec", "ffv1", "-o", str(out), "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout.splitlines()[-1])["model"] == "ensemble.ens"
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 20
    scored = run_cli("eval", "interpolate", str(clip), "--model", "ens,blend", "--json")
    assert scored.returncode == 0, scored.stderr
    assert [json.loads(line)["model"] for line in scored.stdout.splitlines()] == ["ensemble.ens", "blend.average"]


def test_engines_give_the_same_frames_with_their_confidence_maps() -> None:
    """Each candidate engine's confidence: how much its two frames disagree once brought to t (0 to 1)."""
    from vidgen.models.ifnet import IFNet
    from vidgen.tasks.interpolate.engines import MidpointNetworkInterpolator

    torch.manual_seed(0)
    frames0, frames1 = pair(height=48, width=64)
    times = [0.25, 0.5, 1 / 3]
    network = MidpointNetworkInterpolator(IFNet(16).eval(), "cpu", retimes=True)
    for engine in (network, load_engine("fast", "cpu")[1], load_engine("blend", "cpu")[1]):
        made, confidence = engine.interpolate_with_confidence(frames0, frames1, times)
        assert np.array_equal(made, engine.interpolate(frames0, frames1, times))
        assert confidence.shape == (1, 3, 48, 64) and confidence.dtype == np.float32
        assert 0 <= confidence.min() and confidence.max() <= 1 and confidence.max() > 0
    same, none = network.interpolate_with_confidence(frames0, frames0, [0.5])
    assert np.abs(none).max() < 1e-3  # a still pair: nothing to disagree about

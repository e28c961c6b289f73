"""`vidgen eval`: scores users can trust, in the shapes scripts parse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import moving_frames, run_cli, write_clip
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def rgb_frames(path: Path) -> list[np.ndarray]:
    """The frames as vidgen's scores see them (its own RGB conversion, `vidgen.video.reader`)."""
    from vidgen.video.reader import read_rgb_frames

    return list(read_rgb_frames(path))


def test_compare_agrees_with_scikit_image(tmp_path: Path) -> None:
    frames = moving_frames(5, width=96, height=64)
    reference = write_clip(tmp_path / "ref.mkv", frames, codec="ffv1", pix_fmt="yuv444p", options={})
    noisy = [np.clip(f.astype(int) + np.random.default_rng(i).integers(-20, 21, f.shape), 0, 255).astype(np.uint8)
             for i, f in enumerate(frames)]
    distorted = write_clip(tmp_path / "dist.mp4", noisy, options={"crf": "30"})
    result = run_cli("eval", "compare", str(reference), str(distorted), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    a, b = rgb_frames(reference), rgb_frames(distorted)
    expected_psnr = [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b)]
    expected_ssim = [structural_similarity(x, y, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False) for x, y in zip(a, b)]
    assert report["frames"] == 5
    assert [f["psnr"] for f in report["per_frame"]] == pytest.approx(expected_psnr, abs=1e-6)
    assert [f["ssim"] for f in report["per_frame"]] == pytest.approx(expected_ssim, abs=1e-6)
    assert report["psnr"] == pytest.approx(np.mean(expected_psnr), abs=1e-3)


def test_eval_interpolate_ranks_flow_above_blend_and_saves_montages(tmp_path: Path) -> None:
    frames = moving_frames(9, width=128, height=96)
    clip = write_clip(tmp_path / "clip.mkv", frames, codec="ffv1", pix_fmt="yuv444p", options={})
    montages = tmp_path / "cmp"
    result = run_cli("eval", "interpolate", str(clip), "--model", "flow,blend", "--json", "--save-comparison", str(montages))
    assert result.returncode == 0, result.stderr
    rows = {row["model"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"classical-flow.dis", "blend.average"}
    assert rows["blend.average"]["frames"] == 4  # frames 1, 3, 5, 7 rebuilt
    assert rows["classical-flow.dis"]["psnr"] > rows["blend.average"]["psnr"]
    assert all(row["ms_per_frame"] > 0 for row in rows.values())
    pictures = sorted(montages.glob("*.png"))
    assert len(pictures) == 3
    image = rgb_frames(pictures[0])[0]
    assert image.shape[1] >= 5 * 128  # truth, two models, two heat maps side by side


def test_eval_interpolate_blend_score_is_the_true_midpoint_error(tmp_path: Path) -> None:
    frames = moving_frames(3, width=64, height=48)
    clip = write_clip(tmp_path / "clip.mkv", frames, codec="ffv1", pix_fmt="yuv444p", options={})
    decoded = rgb_frames(clip)
    result = run_cli("eval", "interpolate", str(clip), "--model", "blend", "--json")
    midpoint = np.rint((decoded[0].astype(np.float64) + decoded[2]) / 2).astype(np.uint8)
    expected = peak_signal_noise_ratio(decoded[1], midpoint, data_range=255)
    assert json.loads(result.stdout)["psnr"] == pytest.approx(expected, abs=1e-3)


def test_eval_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli("eval", "interpolate", str(tmp_path / "nope.mp4"), "--model", "blend")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "no such file" in result.stderr

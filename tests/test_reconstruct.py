"""`vidgen reconstruct`, `vidgen eval reconstruct` and `vidgen train reconstruct` end to end on tiny clips."""

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

runner = CliRunner()

TINY_V2V = {"channels": [8, 16], "latent_channels": 4, "temporal_layers": 1, "heads": 2, "chunk_frames": 4}
TINY_VQ = {"channels": [8, 16], "codebook_size": 16, "code_dim": 8}


def _add(tmp_path: Path, name: str, arch: str, config: dict, seed: int = 0) -> None:
    from vidgen.registry.archs import get_arch

    torch.manual_seed(seed)
    weights = tmp_path / f"{name}.pt"
    torch.save(get_arch(arch).build(**config).state_dict(), weights)
    result = runner.invoke(app, ["models", "add", name, "--weights", str(weights), "--arch", arch,
                                 "--config", json.dumps(config)])
    assert result.exit_code == 0, result.output


def _run(*args: str) -> object:
    return runner.invoke(app, ["reconstruct", *args])


def _frames(path: Path) -> list[np.ndarray]:
    from vidgen.video.reader import read_rgb_frames

    return list(read_rgb_frames(path))


def _one_line_error(result: object) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    _add(tmp_path, "tiny", "v2v", TINY_V2V)
    return "tiny"


@pytest.fixture
def clip32(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", moving_frames(9, width=32, height=32), rate=Fraction(30000, 1001))


def test_round_trip_json_fields_and_output(tmp_path: Path, tiny: str, clip32: Path) -> None:
    out = tmp_path / "out.mp4"
    result = _run(str(clip32), "-o", str(out), "--model", tiny, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["input_shape"] == [9, 32, 32, 3]
    # chunks of 4 overlapping by 1 (a temporal model): starts 0, 3, 6 -> 4 + 4 + 3 latent frames
    assert report["latent_shape"] == [11, 8, 8, 4]
    assert (report["chunk"], report["overlap"]) == (4, 1)
    assert isinstance(report["psnr"], float) and 0 < report["ssim"] <= 1 and report["seconds"] >= 0
    assert "bits_per_pixel" not in report and "codebook_size" not in report
    from vidgen.video.reader import probe

    info = probe(out)
    assert (info.width, info.height, info.frame_rate) == (32, 32, Fraction(30000, 1001))
    assert len(_frames(out)) == 9
    assert not list(tmp_path.glob(".out.mp4*"))  # no temp file left behind


def test_vqvae_reports_codebook_and_bits_per_pixel(tmp_path: Path, clip32: Path) -> None:
    _add(tmp_path, "tok", "vqvae", TINY_VQ)
    result = _run(str(clip32), "-o", str(tmp_path / "out.mkv"), "--model", "tok", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["codebook_size"] == 16
    assert report["overlap"] == 0  # frames are coded independently: no overlap needed
    assert report["latent_shape"] == [9, 8, 8, 1]
    # 8x8 tokens per 32x32 frame, log2(16) = 4 bits each
    assert report["bits_per_pixel"] == pytest.approx(9 * 64 * 4 / (9 * 32 * 32))


def test_chunking_matches_whole_clip_for_frame_independent_model(tmp_path: Path, clip32: Path) -> None:
    _add(tmp_path, "indep", "v2v", {**TINY_V2V, "temporal_layers": 0})
    whole, chunked, overlapped = tmp_path / "whole.mkv", tmp_path / "chunked.mkv", tmp_path / "overlap.mkv"
    for out, args in ((whole, ["--chunk", "16"]), (chunked, ["--chunk", "2"]), (overlapped, ["--chunk", "4", "--overlap", "2"])):
        result = _run(str(clip32), "-o", str(out), "--model", "indep", "--codec", "ffv1", *args)
        assert result.exit_code == 0, result.output
    reference = _frames(whole)
    assert len(reference) == 9
    for other in (chunked, overlapped):
        frames = _frames(other)
        assert len(frames) == 9
        for a, b in zip(reference, frames):
            np.testing.assert_array_equal(a, b)


def test_longer_clip_than_a_chunk_keeps_every_frame(tmp_path: Path, tiny: str) -> None:
    clip = write_clip(tmp_path / "long.mp4", moving_frames(13, width=32, height=32))
    for chunk, overlap in (("4", "1"), ("5", "2"), ("3", "0")):
        out = tmp_path / f"out{chunk}{overlap}.mp4"
        result = _run(str(clip), "-o", str(out), "--model", tiny, "--chunk", chunk, "--overlap", overlap, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["frames"] == 13
        assert len(_frames(out)) == 13
    bad = _run(str(clip), "-o", str(tmp_path / "x.mp4"), "--model", tiny, "--chunk", "4", "--overlap", "3")
    assert "at most half the chunk" in _one_line_error(bad)


def test_odd_size_is_padded_and_cropped_back(tmp_path: Path, tiny: str) -> None:
    clip = write_clip(tmp_path / "odd.mp4", moving_frames(5, width=34, height=26))
    out = tmp_path / "odd_out.mp4"
    result = _run(str(clip), "-o", str(out), "--model", tiny, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["input_shape"] == [5, 26, 34, 3]
    assert report["latent_shape"][1:3] == [7, 9]  # padded to 28x36, 1/4
    frames = _frames(out)
    assert len(frames) == 5 and frames[0].shape == (26, 34, 3)


@pytest.mark.parametrize("arch", ["v2v", "vqvae"])
def test_save_latents_then_from_latents_equals_direct_round_trip(tmp_path: Path, arch: str) -> None:
    from safetensors import safe_open

    _add(tmp_path, "m", arch, TINY_V2V if arch == "v2v" else TINY_VQ)
    clip = write_clip(tmp_path / "odd.mp4", moving_frames(7, width=34, height=26), rate=25)
    direct, latents, back = tmp_path / "direct.mkv", tmp_path / "lat.safetensors", tmp_path / "back.mkv"
    result = _run(str(clip), "-o", str(direct), "--save-latents", str(latents), "--model", "m", "--codec", "ffv1")
    assert result.exit_code == 0, result.output
    with safe_open(str(latents), framework="pt") as handle:
        meta = handle.metadata()
        first = handle.get_tensor("chunk.000000")
    assert meta["format"] == "vidgen-latents/1" and meta["model"] == f"{arch}.m" and meta["arch"] == arch
    assert (meta["fps"], meta["frames"], meta["height"], meta["width"]) == ("25/1", "7", "26", "34")
    assert json.loads(meta["padding"]) == [0, 2, 0, 2] and json.loads(meta["config"])["channels"] == [8, 16]
    assert first.dtype == (torch.int16 if arch == "vqvae" else torch.float32)
    only = _run(str(clip), "--save-latents", str(tmp_path / "only.safetensors"), "--model", "m", "--json")
    assert only.exit_code == 0, only.output
    assert json.loads(only.stdout)["psnr"] is None and json.loads(only.stdout)["output"] is None
    result = _run("--from-latents", str(latents), "-o", str(back), "--codec", "ffv1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frames"] == 7
    a, b = _frames(direct), _frames(back)
    assert len(a) == len(b) == 7
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_errors_are_one_line(tmp_path: Path, tiny: str, clip32: Path) -> None:
    out = tmp_path / "out.mp4"
    assert "no such file" in _one_line_error(_run(str(tmp_path / "missing.mp4"), "-o", str(out), "--model", tiny))
    out.write_bytes(b"x")
    assert "already exists" in _one_line_error(_run(str(clip32), "-o", str(out), "--model", tiny))
    assert out.read_bytes() == b"x"
    assert "overwrite the input" in _one_line_error(_run(str(clip32), "-o", str(clip32), "--model", tiny, "--overwrite"))
    garbage = tmp_path / "bad.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    assert "not a vidgen latents file" in _one_line_error(_run("--from-latents", str(garbage), "-o", str(tmp_path / "b.mp4")))
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    assert "not a vidgen latents file" in _one_line_error(_run("--from-latents", str(foreign), "-o", str(tmp_path / "b.mp4")))
    assert "nothing to write" in _one_line_error(_run(str(clip32), "--model", tiny))
    assert "not a reconstruct model" in _one_line_error(_run(str(clip32), "-o", str(tmp_path / "c.mp4"), "--model", "blend"))
    assert not (tmp_path / "b.mp4").exists() and not (tmp_path / "c.mp4").exists()


def test_eval_reconstruct_rows(tmp_path: Path, tiny: str, clip32: Path) -> None:
    _add(tmp_path, "tok", "vqvae", TINY_VQ)
    result = runner.invoke(app, ["eval", "reconstruct", str(clip32), "--model", f"{tiny},tok", "--max-frames", "5", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"v2v.tiny", "vqvae.tok"}
    for row in rows.values():
        assert row["frames"] == 5 and row["bicubic_psnr"] > 10 and row["psnr"] > 0
    assert rows["vqvae.tok"]["bits_per_pixel"] == pytest.approx(64 * 4 / (32 * 32))
    table = runner.invoke(app, ["eval", "reconstruct", str(clip32), "--model", tiny, "--max-frames", "3"])
    assert table.exit_code == 0, table.output


def _eval_rows(*args: str) -> dict[str, dict]:
    result = runner.invoke(app, ["eval", "reconstruct", *args, "--json"])
    assert result.exit_code == 0, result.output
    return {row["model"]: row for row in map(json.loads, result.stdout.splitlines())}


def test_eval_reconstruct_x264_at_the_tokenizers_bits_per_pixel(tmp_path: Path, tiny: str) -> None:
    _add(tmp_path, "tok", "vqvae", TINY_VQ)  # 4 bits per 4x4 pixels: 0.25 bpp
    _add(tmp_path, "fine", "vqvae", {**TINY_VQ, "codebook_size": 4096})  # 12 bits: 0.75 bpp
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(12, width=64, height=48), rate=25)
    rows = _eval_rows(str(clip), "--model", f"{tiny},tok,fine", "--max-frames", "9")
    assert not any(key.startswith("x264") for key in rows["v2v.tiny"])  # continuous latents have no bit count
    for name, target in (("vqvae.tok", 0.25), ("vqvae.fine", 0.75)):
        row = rows[name]
        assert row["frames"] == 9 and row["bits_per_pixel"] == pytest.approx(target)
        assert row["x264_note"] is None
        # the largest stream that fits: never above the model's bits, and not far below them
        assert 0.6 * target <= row["x264_bits_per_pixel"] <= target
        assert 10 < row["x264_psnr"] < 100 and 0 < row["x264_ssim"] <= 1
        assert "crf=" in row["x264_settings"] or "qp=" in row["x264_settings"]
    # three times the bits buy x264 a better picture
    assert rows["vqvae.fine"]["x264_psnr"] > rows["vqvae.tok"]["x264_psnr"] + 1
    assert rows["vqvae.fine"]["x264_ssim"] > rows["vqvae.tok"]["x264_ssim"]
    table = runner.invoke(app, ["eval", "reconstruct", str(clip), "--model", "tok", "--max-frames", "9"])
    assert table.exit_code == 0, table.output
    x264_lines = [line for line in table.output.splitlines() if " x264 " in line]
    assert len(x264_lines) == 1 and f"{rows['vqvae.tok']['x264_bits_per_pixel']:.4f}" in x264_lines[0], table.output


def test_eval_reconstruct_x264_codes_only_the_evaluated_frames(tmp_path: Path) -> None:
    _add(tmp_path, "fine", "vqvae", {**TINY_VQ, "codebook_size": 4096})
    # five ordinary frames, then five of noise that would eat any budget; stored losslessly (ffv1)
    first = moving_frames(5, width=64, height=48)
    noise = list(np.random.default_rng(3).integers(0, 256, (5, 48, 64, 3), dtype=np.uint8))
    clip = write_clip(tmp_path / "noisy_end.mkv", first + noise, rate=25, codec="ffv1")
    alone = write_clip(tmp_path / "first5.mkv", first, rate=25, codec="ffv1")
    short = _eval_rows(str(clip), "--model", "fine", "--max-frames", "5")["vqvae.fine"]
    reference = _eval_rows(str(alone), "--model", "fine")["vqvae.fine"]
    fields = ("frames", "psnr", "bits_per_pixel", "x264_psnr", "x264_ssim", "x264_bits_per_pixel", "x264_settings")
    assert [short[key] for key in fields] == [reference[key] for key in fields]
    assert short["x264_psnr"] > 25


def test_eval_reconstruct_x264_below_its_floor_says_so(tmp_path: Path, clip32: Path) -> None:
    _add(tmp_path, "coarse", "vqvae", {**TINY_VQ, "codebook_size": 2})  # 1 bit per 16 pixels: 40 bytes in all
    row = _eval_rows(str(clip32), "--model", "coarse", "--max-frames", "5")["vqvae.coarse"]
    assert row["bits_per_pixel"] == pytest.approx(1 / 16)
    assert row["x264_bits_per_pixel"] > row["bits_per_pixel"]  # reported anyway
    assert "cannot go down to 0.0625 bits per pixel" in row["x264_note"]
    assert row["x264_psnr"] > 5
    table = runner.invoke(app, ["eval", "reconstruct", str(clip32), "--model", "coarse", "--max-frames", "5"])
    assert table.exit_code == 0 and "cannot go down" in table.output, table.output


def test_train_vqvae_then_add_and_use_it(tmp_path: Path) -> None:
    data, val = tmp_path / "data", tmp_path / "val"
    data.mkdir()
    val.mkdir()
    for i in range(2):
        write_clip(data / f"train{i}.mp4", moving_frames(8, width=32, height=32, seed=i))
    write_clip(val / "val.mp4", moving_frames(6, width=32, height=32, seed=5))
    config = tmp_path / "run.toml"
    config.write_text("[model]\nchannels = [8, 16]\ncodebook_size = 16\ncode_dim = 8\n")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "reconstruct", "--arch", "vqvae", "--data", str(data), "--val", str(val),
                                 "--out", str(run), "--config", str(config), "--steps", "2", "--crop", "32",
                                 "--val-crop", "32", "--batch-size", "2", "--val-every", "1", "--log-every", "1",
                                 "--quiet", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["steps"] == 2 and summary["metric"] == "psnr" and summary["baseline_val"] is not None
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_commitment" in r and "loss_perplexity" in r for r in records)
    assert any("val_bicubic_psnr" in r and "val_perplexity" in r for r in records)
    added = runner.invoke(app, ["models", "add", "mytok", "--from", str(run)])
    assert added.exit_code == 0, added.output
    out = tmp_path / "out.mp4"
    used = _run(str(val / "val.mp4"), "-o", str(out), "--model", "mytok", "--json")
    assert used.exit_code == 0, used.output
    assert json.loads(used.stdout)["codebook_size"] == 16 and len(_frames(out)) == 6


def test_shipped_default_reconstructs_offline_and_beats_bicubic(tmp_path: Path) -> None:
    """No --model and no network: the shipped v2v.small is the default, and on real footage it codes more
    than 1 dB better than bicubic down-and-up sampling at the same number of values."""
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(6, width=96, height=64), rate=25)
    result = _run(str(clip), "-o", str(tmp_path / "out.mp4"), "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "v2v.small"
    example = Path(__file__).resolve().parents[1] / "examples" / "bbb_360p.mp4"  # real footage, never trained on
    result = runner.invoke(app, ["eval", "reconstruct", str(example), "--max-frames", "3", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["model"] == "v2v.small"  # eval reconstruct's default is the registered default too
    assert row["input_shape"] == [3, 360, 640, 3] and row["psnr"] > row["bicubic_psnr"] + 1


def test_shipped_tokenizer_codes_real_footage_offline_better_than_bicubic() -> None:
    """`vqvae.small`, the shipped general-footage tokenizer: 10-bit tokens on a 1/8 grid, no network, more
    than 1 dB above bicubic at the same number of values on footage it never saw, with x264 beside it."""
    example = Path(__file__).resolve().parents[1] / "examples" / "bbb_360p.mp4"
    result = runner.invoke(app, ["eval", "reconstruct", str(example), "--model", "vqvae.small", "--max-frames", "2",
                                 "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["model"] == "vqvae.small" and row["latent_shape"] == [2, 45, 80, 1]
    assert row["codebook_size"] == 1024 and row["bits_per_pixel"] == pytest.approx(10 / 64)
    assert row["psnr"] > row["bicubic_psnr"] + 1
    assert row["x264_bits_per_pixel"] <= row["bits_per_pixel"] and row["x264_psnr"] > row["psnr"]

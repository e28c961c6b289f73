"""`vidgen generate` and `vidgen eval generate` end to end, on a tiny random-weight in-house model."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fakes import add_tiny_tokenizer
from vidgen.cli import app
from vidgen.registry.archs import get_arch

runner = CliRunner()
VOCABULARY = ["digit", "down", "is", "left", "moving", "right", "the", "up", "0", "1", "2", "3"]
GEN_CONFIG = {"vocab_size": 32, "grid": [3, 4, 4], "width": 32, "depth": 1, "heads": 2, "text_dim": 8,
              "tokenizer": "tok", "text_encoder": "fake-text.tiny", "vocabulary": VOCABULARY, "fps": 4.0,
              "frame_size": [16, 16], "caption_dropout": 0.0}


@pytest.fixture
def tiny_generator(tmp_path: Path, isolated_home: Path) -> str:
    """`gen`: a random-weight video-gpt over a tiny vqvae (16x16 frames, 3 keyframes at 4 fps) and a fake text encoder."""
    from safetensors.torch import save_file

    add_tiny_tokenizer(tmp_path, isolated_home)
    torch.manual_seed(0)
    save_file(get_arch("video-gpt").build(**GEN_CONFIG).state_dict(), str(tmp_path / "gen.safetensors"))
    added = runner.invoke(app, ["models", "add", "gen", "--weights", str(tmp_path / "gen.safetensors"), "--arch",
                                "video-gpt", "--task", "generate", "--config", json.dumps(GEN_CONFIG), "--license", "MIT"])
    assert added.exit_code == 0, added.output
    return "gen"


def _frames(path: Path) -> tuple[np.ndarray, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
        return frames, float(stream.average_rate)


def _generate(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["generate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_same_seed_same_video_other_seed_other_video(tmp_path: Path, tiny_generator: str) -> None:
    paths = [tmp_path / name for name in ("a.mp4", "b.mp4", "c.mp4")]
    for path, seed in zip(paths, ("1", "1", "2")):
        code, out, err = _generate("the digit 3 is moving left", "-o", str(path), "--model", tiny_generator,
                                   "--seed", seed, "--json", "--codec", "libx264", "--crf", "0")
        assert code == 0, err
    row = json.loads(out)
    assert row["status"] == "ok" and row["model"] == "video-gpt.gen" and row["frames"] == 3 and row["keyframes"] == 3
    assert (row["width"], row["height"], row["fps"], row["seed"]) == (16, 16, 4.0, 2)
    (a, rate), (b, _), (c, _) = (_frames(path) for path in paths)
    assert a.shape == (3, 16, 16, 3) and rate == 4.0
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_interpolate_size_and_frames_options(tmp_path: Path, tiny_generator: str) -> None:
    out = tmp_path / "smooth.mp4"
    code, stdout, err = _generate("the digit 1 is moving up", "-o", str(out), "--model", tiny_generator,
                                  "--interpolate", "x2", "--size", "32x24", "--json")
    assert code == 0, err
    row = json.loads(stdout)
    assert row["keyframes"] == 3 and row["frames"] == 5 and row["interpolator"] == "classical-flow.dis"
    frames, rate = _frames(out)
    assert frames.shape == (5, 24, 32, 3) and rate == 8.0

    trimmed = tmp_path / "trimmed.mp4"
    code, stdout, err = _generate("the digit 1 is moving up", "-o", str(trimmed), "--model", tiny_generator,
                                  "--interpolate", "x4", "--frames", "6", "--fps", "10", "--json")
    assert code == 0, err
    assert _frames(trimmed)[0].shape[0] == 6 and _frames(trimmed)[1] == 10.0


def test_unknown_words_warn_but_still_generate(tmp_path: Path, tiny_generator: str) -> None:
    out = tmp_path / "cat.mp4"
    code, _, err = _generate("a cat dancing", "-o", str(out), "--model", tiny_generator, "--quiet")
    assert code == 0, err
    assert "'a', 'cat', 'dancing'" in err and "--model wan" in err
    assert out.is_file()


def test_prompts_file_writes_one_video_per_line(tmp_path: Path, tiny_generator: str) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# digits\nthe digit 0 is moving right\n\nthe digit 2 is moving down\n")
    out = tmp_path / "videos"
    code, stdout, err = _generate("--prompts", str(prompts), "-o", str(out), "--model", tiny_generator,
                                  "--seed", "5", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [row["seed"] for row in rows] == [5, 6]
    assert sorted(p.name for p in out.iterdir()) == ["0000-the-digit-0-is-moving-right.mp4",
                                                     "0001-the-digit-2-is-moving-down.mp4"]


@pytest.mark.parametrize("args, message", [
    ([], "give one PROMPT or --prompts FILE"),
    (["the digit 1 is moving up"], "-o is required"),
    (["the digit 1 is moving up", "--steps", "5"], "--steps applies to diffusion models"),
    (["the digit 1 is moving up", "--frames", "9"], "makes 3 frames here"),
    (["the digit 1 is moving up", "--size", "big"], "expected WIDTHxHEIGHT"),
    (["the digit 1 is moving up", "--interpolate", "x0"], "expected x2, x4"),
    (["the digit 1 is moving up", "--model", "blend"], "not a text-to-video model"),
])
def test_bad_options_fail_with_one_clear_line(tmp_path: Path, tiny_generator: str, args: list[str], message: str) -> None:
    out = tmp_path / "x.mp4"
    full = [*args, "--model", tiny_generator] if "--model" not in args else list(args)
    if args and "-o is required" not in message:
        full += ["-o", str(out)]
    code, _, err = _generate(*full)
    assert code == 2, err
    assert message in err
    assert not out.exists() and not list(tmp_path.glob("*.part*"))


def test_existing_output_is_kept(tmp_path: Path, tiny_generator: str) -> None:
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"precious")
    code, _, err = _generate("the digit 1 is moving up", "-o", str(out), "--model", tiny_generator)
    assert code == 1 and "already exists" in err
    assert out.read_bytes() == b"precious"


def test_eval_generate_reports_seen_and_held_out_faithfulness(tiny_generator: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    from vidgen.tasks.generate import judge
    from vidgen.tasks.generate.judge import evaluate

    light = judge.load_classifier(judge.ClassifierSettings(renders_per_image=1, epochs=1))
    monkeypatch.setattr(evaluate, "default_classifier", lambda: light)  # where evaluate_prompts finds it
    result = runner.invoke(app, ["eval", "generate", "--model", tiny_generator, "--per-combo", "1", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "video-gpt.gen"
    assert report["seen"]["count"] == 34 and report["held_out"]["count"] == 6 and report["all"]["count"] == 40
    # A random-weight model draws noise: the judge must not call it faithful.
    assert report["all"]["faithfulness"] < 0.2


def test_a_prompt_gives_the_same_video_alone_and_in_a_batch(tiny_generator: str) -> None:
    from vidgen.tasks.generate.pipeline import GenerateSettings, load_generator

    generator = load_generator(tiny_generator, "cpu")
    settings = GenerateSettings()
    alone, _ = generator.frames("the digit 2 is moving down", GenerateSettings(seed=4))
    batch = generator.frames_batch(["the digit 0 is moving up", "the digit 2 is moving down"], [9, 4], settings)
    assert np.array_equal(batch[1], alone)
    assert not np.array_equal(batch[0], alone)


def test_shipped_builtin_generator_and_tokenizer_load_offline(isolated_home: Path) -> None:
    """The built-in model's weights ship inside the package: verified and loaded with no network."""
    from vidgen.models.video_gpt import VideoGPT
    from vidgen.registry import load_for_task

    loaded = load_for_task("generate")
    model = loaded.model
    assert loaded.name == "video-gpt.digits"
    assert isinstance(model, VideoGPT) and model.grid == (4, 8, 8) and model.guidance == 3.0
    # its own word encoder: no text encoder entry to load (nothing to download); the tokenizer comes with it
    assert model.text_encoder == "words" and model.words is not None and set(loaded.parts) == {"tokenizer"}
    assert model.unknown_words("the digit 3 is moving left") == []
    tokenizer = loaded.parts["tokenizer"].model
    frames = tokenizer.decode(torch.zeros(1, 4, 8, 8, dtype=torch.long))
    assert frames.shape == (1, 4, 3, 64, 64)


def test_builtin_model_draws_the_captioned_motion(tmp_path: Path, isolated_home: Path) -> None:
    """End to end with no network (the test home is offline): the judge's tracker sees the captioned direction."""
    pytest.importorskip("sklearn")
    from vidgen.tasks.generate.judge import track_motion

    out = tmp_path / "d.mp4"
    code, stdout, err = _generate("the digit 1 is moving right", "-o", str(out), "--seed", "0", "--json",
                                  "--codec", "libx264", "--crf", "0")
    assert code == 0, err
    row = json.loads(stdout)
    assert row["model"] == "video-gpt.digits" and row["frames"] == 4 and (row["width"], row["height"]) == (64, 64)
    frames, _ = _frames(out)
    assert track_motion(frames).direction == "right"


def test_captioned_tokens_reach_forkserver_workers_with_many_clips() -> None:
    """The dataset goes to DataLoader workers through a fork server, which passes only a few hundred
    tensors: the clips are one packed tensor, so a dataset of many clips still loads (and samples the same)."""
    from vidgen.tasks.generate.captioned_tokens import CaptionedTokens
    from vidgen.train.batches import worker_context

    clips = [torch.full((5 + i % 3, 2, 2), i, dtype=torch.int16) for i in range(600)]
    dataset = CaptionedTokens(clips, [i % 2 for i in range(600)], torch.zeros(2, 3, 4),
                              torch.ones(2, 3, dtype=torch.bool), keyframes=2, stride=2, augment=True, seed=0)
    assert len(dataset) == 600 and int(dataset[599][0].unique()) == 599
    loader = torch.utils.data.DataLoader(dataset, batch_size=300, num_workers=1,
                                         multiprocessing_context=worker_context(1))
    tokens, text, mask = next(iter(loader))
    assert tokens.shape == (300, 2, 2, 2) and tokens[:, 0, 0, 0].tolist() == list(range(300))

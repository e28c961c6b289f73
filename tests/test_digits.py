"""Captioned moving digits (vidgen.tasks.generate.digits) and the judge that scores text-to-video clips."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from vidgen.errors import UsageError  # noqa: E402
from vidgen.tasks.generate import digits, judge  # noqa: E402
from vidgen.tasks.generate.digits import ALL_COMBOS, DIRECTIONS, HELD_OUT, caption, parse_caption  # noqa: E402

# A lighter classifier than the shipped one (about 92% on digits instead of 98-99%), so the file stays fast.
TEST_SETTINGS = judge.ClassifierSettings(renders_per_image=4, epochs=5)


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("judge") / "digits.safetensors"


@pytest.fixture(scope="module")
def classifier(classifier_file: Path) -> judge.DigitClassifier:
    trained = judge.load_classifier(TEST_SETTINGS, path=classifier_file)  # trains, then caches
    assert classifier_file.exists()
    return trained


@pytest.fixture(scope="module")
def test_sprites() -> tuple[np.ndarray, np.ndarray]:
    images, labels = digits.load_digit_images("judge-test")
    return digits.upscale_digits(images), labels


def ground_truth(sprites: tuple[np.ndarray, np.ndarray], digit: int, direction: str, seed: int) -> np.ndarray:
    images, labels = sprites
    rng = np.random.default_rng(seed)
    return digits.render_clip(images[rng.choice(np.flatnonzero(labels == digit))], direction, rng)


def centroids(clip: np.ndarray) -> np.ndarray:
    grey = clip[..., 0].astype(np.float64)
    yy, xx = np.mgrid[: grey.shape[1], : grey.shape[2]]
    mass = grey.sum(axis=(1, 2))
    return np.stack([(grey * xx).sum(axis=(1, 2)) / mass, (grey * yy).sum(axis=(1, 2)) / mass], axis=1)


def test_captions_round_trip_and_reject_other_wording() -> None:
    for digit, direction in ALL_COMBOS:
        assert parse_caption(caption(digit, direction)) == (digit, direction)
    assert caption(7, "up") == "the digit 7 is moving up"
    assert parse_caption("  the digit 3 is moving left\n") == (3, "left")
    for text in ("the digit 12 is moving up", "the digit 3 is moving sideways", "a digit 3 is moving up", ""):
        assert parse_caption(text) is None
    with pytest.raises(UsageError):
        caption(10, "up")


def test_held_out_pairs_leave_every_digit_and_direction_in_training() -> None:
    assert len(ALL_COMBOS) == 40 and len(HELD_OUT) == 6 and HELD_OUT < set(ALL_COMBOS)
    train = digits.combos("train")
    assert set(train) == set(ALL_COMBOS) - HELD_OUT
    assert {d for d, _ in train} == set(range(10)) and {m for _, m in train} == set(DIRECTIONS)
    assert max(Counter(d for d, _ in HELD_OUT).values()) == 1  # each digit still seen moving 3 ways
    assert {m for _, m in HELD_OUT} == set(DIRECTIONS)
    assert set(digits.combos("test")) == set(digits.combos("val")) == set(ALL_COMBOS)


def test_image_splits_are_disjoint_stratified_and_fixed_by_seed() -> None:
    images, _ = digits._sklearn_digits()
    parts = {name: digits.load_digit_images(name) for name in digits.IMAGE_SPLITS}
    keys = {name: {img.tobytes() for img in imgs} for name, (imgs, _) in parts.items()}
    assert sum(len(imgs) for imgs, _ in parts.values()) == len(images)
    assert not keys["generator"] & keys["judge-train"] and not keys["judge-train"] & keys["judge-test"]
    assert not keys["generator"] & keys["judge-test"]
    class_sizes = np.bincount(digits._sklearn_digits()[1])
    for share, (_, labels) in zip(digits.IMAGE_SPLIT_SHARES, parts.values()):
        assert np.abs(np.bincount(labels, minlength=10) - share * class_sizes).max() <= 1
    again, _ = digits.load_digit_images("judge-test")
    other, _ = digits.load_digit_images("judge-test", split_seed=1)
    assert np.array_equal(again, parts["judge-test"][0]) and not np.array_equal(other, again)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_clips_move_the_stated_way_at_constant_speed_inside_the_frame(direction: str) -> None:
    sprite = digits.upscale_digits(digits.load_digit_images("generator")[0][0])
    expected = np.array(digits.DIRECTION_VECTORS[direction])
    speeds = set()
    for seed in range(12):
        clip = digits.render_clip(sprite, direction, np.random.default_rng(seed))
        assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
        assert np.array_equal(clip[..., 0], clip[..., 2])
        grey = clip[..., 0].reshape(16, -1)
        assert (grey.max(axis=1) == 255).all()  # the stroke at full brightness
        assert (grey > 0).sum(axis=1).min() == (np.round(sprite * 255) > 0).sum()  # nothing cut by the edges
        steps = np.diff(centroids(clip), axis=0)
        speed = round(np.abs(steps).max())
        speeds.add(speed)
        np.testing.assert_allclose(steps, np.tile(expected * speed, (15, 1)), atol=1e-9)
    assert speeds == {1, 2}


def test_a_digit_too_big_to_travel_is_refused() -> None:
    with pytest.raises(UsageError):
        digits.render_clip(np.ones((60, 60)), "left", np.random.default_rng(0))


def test_written_dataset_decodes_to_the_rendered_clips_and_is_reproducible(tmp_path: Path) -> None:
    paths = digits.write_dataset(tmp_path / "a", 5, seed=3, split="train")
    assert [p.name for p in paths] == [f"{i:06d}.mp4" for i in range(5)]
    images, labels = digits.load_digit_images("generator")
    sprites = digits.upscale_digits(images)
    for index, path in enumerate(paths):
        pair = parse_caption(path.with_suffix(".txt").read_text(encoding="utf-8"))
        assert pair == digits.clip_combo(index, seed=3, split="train") and pair not in HELD_OUT
        rng = digits._clip_rng(3, "train", 1, index)
        pool = np.flatnonzero(labels == pair[0])
        expected = digits.render_clip(sprites[pool[rng.integers(len(pool))]], pair[1], rng)
        decoded = digits.read_clip(path)
        assert decoded.shape == expected.shape
        assert np.abs(decoded.astype(int) - expected).max() <= 1  # lossless x264, observed exactly 0
    again = digits.write_dataset(tmp_path / "b", 3, seed=3, split="train")
    for first, second in zip(paths, again):
        assert first.read_bytes() == second.read_bytes()
        assert first.with_suffix(".txt").read_bytes() == second.with_suffix(".txt").read_bytes()
    other = digits.write_dataset(tmp_path / "c", 1, seed=4, split="train")
    assert other[0].read_bytes() != paths[0].read_bytes()


def test_splits_cover_their_pairs_evenly() -> None:
    for split in ("train", "test"):
        pairs = [digits.clip_combo(i, seed=0, split=split) for i in range(2 * len(digits.combos(split)))]
        assert Counter(pairs) == {pair: 2 for pair in digits.combos(split)}


def test_judge_reads_ground_truth_clips(classifier: judge.DigitClassifier, test_sprites) -> None:
    rows = []
    for i, (digit, direction) in enumerate(ALL_COMBOS):
        clip = ground_truth(test_sprites, digit, direction, seed=i)
        result = judge.judge_clip(clip, classifier=classifier)
        rows.append(result.matches(digit, direction))
        assert result.speed_px_per_frame == pytest.approx(np.abs(np.diff(centroids(clip), axis=0)).max(), abs=1e-3)
    assert all(direction_ok for _, direction_ok in rows)
    assert sum(digit_ok for digit_ok, _ in rows) >= 34  # the light test classifier; the shipped one: see below


def test_judge_handles_other_frame_sizes(classifier: judge.DigitClassifier, test_sprites) -> None:
    clip = ground_truth(test_sprites, 0, "down", seed=1)
    big = judge.degrade(clip, np.random.default_rng(0), size=128)
    result = judge.judge_clip(big, classifier=classifier)
    assert result.direction == "down"
    assert result.speed_px_per_frame == pytest.approx(judge.judge_clip(clip, classifier=classifier).speed_px_per_frame,
                                                      abs=0.1)


def test_score_clips_rejects_wrong_captions(classifier: judge.DigitClassifier, test_sprites) -> None:
    pairs = [(d, DIRECTIONS[(d + k) % 4]) for k, d in enumerate(range(10))]
    clips = [ground_truth(test_sprites, d, m, seed=20 + d) for d, m in pairs]
    right = judge.score_clips(clips, [caption(d, m) for d, m in pairs], classifier=classifier)
    assert right["count"] == 10 and right["direction_accuracy"] == 1.0 and right["digit_accuracy"] >= 0.8
    assert right["faithfulness"] == right["digit_accuracy"]
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
    wrong_way = judge.score_clips(clips, [caption(d, opposite[m]) for d, m in pairs], classifier=classifier)
    assert wrong_way["direction_accuracy"] == 0.0 and wrong_way["faithfulness"] == 0.0
    wrong_digit = judge.score_clips(clips, [caption((d + 5) % 10, m) for d, m in pairs], classifier=classifier)
    assert wrong_digit["digit_accuracy"] <= 0.1 and wrong_digit["direction_accuracy"] == 1.0
    with pytest.raises(UsageError):
        judge.score_clips(clips[:1], ["a zero going left"], classifier=classifier)


def test_still_noisy_and_blank_clips_are_not_matches(classifier: judge.DigitClassifier, test_sprites) -> None:
    still = np.repeat(ground_truth(test_sprites, 8, "right", seed=2)[:1], 16, axis=0)
    assert judge.judge_clip(still, classifier=classifier).direction == "none"
    rng = np.random.default_rng(0)
    for clip in (rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8), np.zeros((16, 64, 64, 3), np.uint8)):
        result = judge.judge_clip(clip, classifier=classifier)
        assert result.direction == "none" and result.digit is None and result.digit_confidence == 0.0
    # A digit jumping to random places is not moving anywhere.
    first = ground_truth(test_sprites, 4, "up", seed=3)[0]
    jumping = np.stack([np.roll(first, tuple(rng.integers(-20, 21, 2)), axis=(0, 1)) for _ in range(16)])
    assert judge.judge_clip(jumping, classifier=classifier).direction == "none"


def test_evaluate_prompts_separates_seen_and_held_out(classifier: judge.DigitClassifier, test_sprites) -> None:
    calls = []

    def faithful_except_held_out(prompt: str, seed: int) -> np.ndarray:
        calls.append((prompt, seed))
        digit, direction = parse_caption(prompt)
        if (digit, direction) in HELD_OUT:  # a generator that only knows what it saw: moves the other way
            direction = {"left": "right", "right": "left", "up": "down", "down": "up"}[direction]
        return ground_truth(test_sprites, digit, direction, seed=seed * 100 + digit)

    report = judge.evaluate_prompts(faithful_except_held_out, seed=7, per_combo=1, classifier=classifier)
    assert len(calls) == 40 and {seed for _, seed in calls} == {7}
    assert report["held_out"]["count"] == 6 and report["held_out"]["direction_accuracy"] == 0.0
    assert report["held_out"]["faithfulness"] == 0.0
    assert report["seen"]["count"] == 34 and report["seen"]["direction_accuracy"] == 1.0
    assert report["seen"]["faithfulness"] >= 0.8
    assert report["per_direction"]["left"]["direction_accuracy"] == pytest.approx(9 / 10)
    assert set(report["per_digit"]) == {str(d) for d in range(10)} and len(report["results"]) == 40


def test_judge_is_deterministic(classifier: judge.DigitClassifier, classifier_file: Path, test_sprites) -> None:
    clip = ground_truth(test_sprites, 5, "right", seed=9)
    reloaded = judge.load_classifier(TEST_SETTINGS, path=classifier_file)
    assert judge.judge_clip(clip, classifier=reloaded) == judge.judge_clip(clip, classifier=classifier)
    tiny = judge.ClassifierSettings(renders_per_image=1, epochs=1)
    first, second = judge.train_classifier(tiny), judge.train_classifier(tiny)
    for name, tensor in first.network.state_dict().items():
        assert tensor.equal(second.network.state_dict()[name]), name
    assert tiny.key() != TEST_SETTINGS.key()


def test_default_classifier_is_cached_under_vidgen_home(isolated_home: Path) -> None:
    path = judge.classifier_path()
    assert path.parent == isolated_home / "judges" and path.suffix == ".safetensors"
    assert judge.classifier_path(TEST_SETTINGS) != path


def test_missing_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "sklearn.datasets", None)
    digits._sklearn_digits.cache_clear()
    try:
        with pytest.raises(UsageError) as error:
            digits.load_digit_images("generator")
        assert "vidgen[train]" in error.value.hint
    finally:
        digits._sklearn_digits.cache_clear()


@pytest.mark.slow
def test_shipped_judge_is_accurate_on_ground_truth() -> None:
    report = judge.validate(clips_per_combo=5)
    assert report["clean"]["digit_accuracy"] >= 0.97 and report["clean"]["direction_accuracy"] == 1.0
    assert report["degraded"]["direction_accuracy"] == 1.0 and report["static"]["direction_accuracy"] == 1.0
    assert report["noise"]["direction_none"] == 1.0

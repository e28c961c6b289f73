"""vidgen.train.videos and .windows: finding and splitting videos, and the FrameWindows dataset."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import moving_frames, write_clip

from vidgen.errors import InputNotFoundError, UsageError
from vidgen.train.videos import VIDEO_EXTENSIONS, DataSplit, find_videos, split_videos
from vidgen.train.windows import FrameWindows
from vidgen.video.reader import read_rgb_frames


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def ucf_tree(root: Path, sizes: dict[str, int]) -> dict[str, list[Path]]:
    """UCF-101 style: root/Class/v_Class_gNN.avi, empty files (splitting never opens them)."""
    return {name: [touch(root / name / f"v_{name}_g{i:02d}.avi") for i in range(count)]
            for name, count in sizes.items()}


def frames_of(path: Path) -> np.ndarray:
    return np.stack(list(read_rgb_frames(path)))


def as_uint8(sample: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) float in [0, 1] -> (T, H, W, 3) uint8."""
    return (sample.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


# --- find_videos -----------------------------------------------------------------------------------


def test_find_videos_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    expected = [touch(tmp_path / name) for name in ("a.mp4", "b/c.MKV", "b/d/e.avi", "z.webm")]
    for name in ("notes.txt", "b/d/frame.png", ".cache/x.mp4", "b/._c.mp4", "mp4"):
        touch(tmp_path / name)
    assert find_videos(tmp_path) == expected
    assert find_videos(tmp_path / "b" / "c.MKV") == [tmp_path / "b" / "c.MKV"]
    assert {".mp4", ".mkv", ".avi", ".mov", ".webm"} <= VIDEO_EXTENSIONS
    with pytest.raises(InputNotFoundError):
        find_videos(tmp_path / "missing")


# --- split_videos ----------------------------------------------------------------------------------


def test_split_stratified_deterministic_and_proportional(tmp_path: Path) -> None:
    classes = ucf_tree(tmp_path, {"Archery": 20, "Biking": 20, "Diving": 3, "Fencing": 2, "Golf": 7})
    split = split_videos(tmp_path, seed=3)
    assert split.stratified and split.seed == 3 and split.root == tmp_path
    assert split == split_videos(tmp_path, seed=3)
    assert split != split_videos(tmp_path, seed=4)
    everything = split.train + split.val + split.test
    assert sorted(everything) == sorted(p for videos in classes.values() for p in videos)
    assert len(set(everything)) == len(everything)
    for part in (split.train, split.val, split.test):
        assert part == sorted(part)
    for name, videos in classes.items():
        counts = [sum(p in videos for p in part) for part in (split.train, split.val, split.test)]
        if len(videos) >= 3:
            assert counts[1] >= 1 and counts[2] >= 1 and counts[0] >= 1, name
        else:
            assert counts == [len(videos), 0, 0], name
    assert [sum(p in classes["Archery"] for p in part) for part in (split.train, split.val, split.test)] == [14, 3, 3]
    assert abs(len(split.train) / len(everything) - 0.7) < 0.1


def test_split_flat_and_tiny_folders(tmp_path: Path) -> None:
    flat = [touch(tmp_path / "flat" / f"clip{i:02d}.mp4") for i in range(20)]
    split = split_videos(tmp_path / "flat", seed=0, ratios=(0.7, 0.15, 0.15))
    assert not split.stratified
    assert (len(split.train), len(split.val), len(split.test)) == (14, 3, 3)
    assert sorted(split.train + split.val + split.test) == flat

    tiny = [touch(tmp_path / "tiny" / f"{i}.mov") for i in range(2)]
    split = split_videos(tmp_path / "tiny", seed=0)
    assert (split.train, split.val, split.test) == (tiny, [], [])

    one = touch(tmp_path / "one.mp4")
    assert split_videos(one).train == [one]

    # loose videos next to class folders: not a UCF layout
    ucf_tree(tmp_path / "mixed", {"A": 3, "B": 3})
    touch(tmp_path / "mixed" / "loose.mp4")
    assert not split_videos(tmp_path / "mixed").stratified
    with pytest.raises(UsageError):
        split_videos(tmp_path / "flat", ratios=(0.5, -0.5, 1.0))


def test_split_json_round_trip(tmp_path: Path) -> None:
    ucf_tree(tmp_path / "data", {"A": 5, "B": 4})
    split = split_videos(tmp_path / "data", seed=1)
    data = json.loads(json.dumps(split.to_json()))
    assert all(not Path(p).is_absolute() for p in data["train"] + data["val"] + data["test"])
    assert data["train"][0].startswith(("A/", "B/"))
    assert DataSplit.from_json(data) == split

    outside = touch(tmp_path / "elsewhere" / "v.mp4")
    custom = DataSplit(train=find_videos(tmp_path / "data"), val=[outside], test=[], seed=0,
                       ratios=(1.0, 0.0, 0.0), root=tmp_path / "data", stratified=False)
    back = DataSplit.from_json(json.loads(json.dumps(custom.to_json())))
    assert back.val == [outside.resolve()] and back.train == custom.train
    with pytest.raises(UsageError):
        DataSplit.from_json({"root": "x"})


# --- FrameWindows ----------------------------------------------------------------------------------


def test_windows_shapes_ranges_and_content(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(9))
    decoded = frames_of(clip)
    data = FrameWindows([clip], window=3, crop=32, seed=0)
    assert len(data) == 7 and data.skipped == []
    sample = data[0]
    assert sample.shape == (3, 3, 32, 32) and sample.dtype == torch.float32
    assert 0 <= float(sample.min()) and float(sample.max()) <= 1

    plain = FrameWindows([clip], window=3, crop=None, augment=False)
    assert np.array_equal(as_uint8(plain[4]), decoded[4:7])
    assert plain.locate(4) == (clip, 4)
    centre = FrameWindows([clip], window=3, crop=32, augment=False)
    assert np.array_equal(as_uint8(centre[-1]), decoded[6:9, 8:40, 16:48])

    # frames smaller than the crop are padded by reflection, centred
    padded = FrameWindows([clip], window=2, crop=80, augment=False)[0]
    assert padded.shape == (2, 3, 80, 80)
    assert np.array_equal(as_uint8(padded)[:, 16:64, 8:72], decoded[0:2])
    assert FrameWindows([clip], window=2, crop=80, augment=True)[0].shape == (2, 3, 80, 80)

    small = FrameWindows([clip], window=1, crop=None, augment=False, max_side=32)
    assert len(small) == 9 and small[0].shape == (1, 3, 24, 32)
    with pytest.raises(IndexError):
        data[7]


def test_windows_stride(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(9))
    decoded = frames_of(clip)
    fixed = FrameWindows([clip], window=3, stride=2, crop=None, augment=False)
    assert len(fixed) == 5
    assert np.array_equal(as_uint8(fixed[1]), decoded[[1, 3, 5]])

    ranged = FrameWindows([clip], window=3, stride=(1, 3), crop=None, augment=True, rotation=0, jitter=0)
    assert len(ranged) == 9 - 6  # indexed with room for the largest stride
    strides = set()
    for epoch in range(8):
        ranged.set_epoch(epoch)
        for index in range(len(ranged)):
            frames = as_uint8(ranged[index])
            matches = [s for s in (1, 2, 3) for order in (frames, frames[::-1])
                       if any(np.array_equal(order[:, ::fy, ::fx], decoded[[index, index + s, index + 2 * s]])
                              for fy in (1, -1) for fx in (1, -1))]
            assert matches, (epoch, index)
            strides.update(matches)
    assert strides == {1, 2, 3}


def write_audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def test_broken_short_and_audio_only_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = write_clip(tmp_path / "good.mp4", moving_frames(5))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    short = write_clip(tmp_path / "short.mp4", moving_frames(2))
    audio = write_audio_only(tmp_path / "audio.mp4")
    empty = touch(tmp_path / "empty.mp4")
    with caplog.at_level(logging.WARNING, logger="vidgen.train"):
        data = FrameWindows([broken, good, short, audio, empty], window=3, crop=32)
    assert len(data) == 3 and data.videos[0].path == good
    reasons = dict(data.skipped)
    assert set(reasons) == {broken, short, audio, empty}
    assert "too short" in reasons[short] and "2 frame" in reasons[short]
    assert "no video stream" in reasons[audio]
    for path in (broken, short, audio, empty):
        assert sum(str(path) in r.getMessage() for r in caplog.records if r.name == "vidgen.train") == 1


def test_no_usable_video_names_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "footage"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"not a video at all" * 100)
    write_clip(folder / "b.mp4", moving_frames(2))
    with pytest.raises(UsageError, match="footage"):
        FrameWindows([folder / "a.mp4", folder / "b.mp4"], window=3)
    with pytest.raises(UsageError):
        FrameWindows([], window=3)


def test_windows_across_a_scene_cut_are_dropped(tmp_path: Path) -> None:
    first = moving_frames(6)
    clip = write_clip(tmp_path / "cut.mp4", first + [255 - f for f in moving_frames(6, seed=1)])
    with_cuts = FrameWindows([clip], window=3, crop=None, augment=False, skip_scene_cuts=False)
    assert len(with_cuts) == 10
    data = FrameWindows([clip], window=3, crop=None, augment=False)
    assert len(data) == 8  # windows starting at 4 and 5 hold frames from both sides of the cut
    assert [data.locate(i)[1] for i in range(len(data))] == [0, 1, 2, 3, 6, 7, 8, 9]
    strided = FrameWindows([clip], window=3, stride=2, crop=None, augment=False)
    assert [strided.locate(i)[1] for i in range(len(strided))] == [0, 1, 6, 7]


def test_augmentation_is_identical_on_every_frame(tmp_path: Path) -> None:
    still = write_clip(tmp_path / "still.mp4", moving_frames(1) * 5)
    data = FrameWindows([still], window=3, crop=32, augment=True, seed=5)
    plain = FrameWindows([still], window=3, crop=32, augment=False)
    differs = 0
    for epoch in range(4):
        data.set_epoch(epoch)
        for index in range(len(data)):
            sample = data[index]
            assert torch.equal(sample[0], sample[1]) and torch.equal(sample[1], sample[2])
            differs += not torch.equal(sample, plain[index])
    assert differs > 0


def test_augmentation_geometry_shared_and_reversal(tmp_path: Path) -> None:
    """Frames k = base + 10k: after augmenting, frame differences stay uniform; order flips about half the time."""
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(5))
    data = FrameWindows([clip], window=3, crop=32, augment=True)
    base = np.clip(moving_frames(1, width=80, height=60)[0], 40, 200).astype(np.int16)
    frames = np.stack([base + 10 * k for k in range(3)]).astype(np.uint8)
    reversed_count = 0
    for seed in range(40):
        torch.manual_seed(seed)
        out = data.augmentation(frames)
        step = out[1] - out[0]
        assert torch.allclose(out[2] - out[1], step, atol=2 / 255)
        assert float(step.std()) < 2 / 255 and abs(float(step.mean())) > 5 / 255
        reversed_count += float(step.mean()) < 0
    assert 8 <= reversed_count <= 32


def test_color_jitter_turns_hues_alike_on_every_frame(tmp_path: Path) -> None:
    """A red clip stays red without colour jitter; with it, samples come out in other hues, the same on every frame."""
    red = np.zeros((4, 48, 64, 3), np.uint8)
    red[..., 0] = 200
    red[..., 1:] = 40
    clip = write_clip(tmp_path / "red.mp4", list(red))
    plain = FrameWindows([clip], window=2, crop=32, rotation=0, jitter=0)
    coloured = FrameWindows([clip], window=2, crop=32, rotation=0, jitter=0, color_jitter=0.5)
    dominant = set()
    for epoch in range(6):
        plain.set_epoch(epoch)
        coloured.set_epoch(epoch)
        for index in range(len(plain)):
            assert int(plain[index].mean((0, 2, 3)).argmax()) == 0
            sample = coloured[index]
            assert torch.allclose(sample[0], sample[1], atol=4 / 255)
            dominant.add(int(sample.mean((0, 2, 3)).argmax()))
    assert dominant == {0, 1, 2}
    with pytest.raises(UsageError, match="color jitter"):
        FrameWindows([clip], window=2, crop=32, color_jitter=0.6)


def test_samples_depend_only_on_seed_epoch_and_index(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / f"c{i}.mp4", moving_frames(6, seed=i)) for i in range(2)]
    data = FrameWindows(clips, window=3, stride=(1, 2), crop=24, seed=11)
    data.set_epoch(2)

    def batches(workers: int) -> list[torch.Tensor]:
        from vidgen.train.batches import worker_context  # the trainer's way of starting workers

        loader = torch.utils.data.DataLoader(data, batch_size=3, num_workers=workers, shuffle=False,
                                             multiprocessing_context=worker_context(workers))
        return list(loader)

    torch.manual_seed(0)
    serial = batches(0)
    torch.manual_seed(123)
    parallel = batches(2)
    assert len(serial) == len(parallel) == 2
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))

    rng_before = torch.get_rng_state()
    first = data[1]
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is left alone
    assert torch.equal(data[(2, 1)], first)
    data.set_epoch(3)
    changed = sum(not torch.equal(data[i], serial[i // 3][i % 3]) for i in range(len(data)))
    assert changed >= len(data) - 1
    data.set_epoch(2)
    assert torch.equal(data[1], first)

    other_seed = FrameWindows(clips, window=3, stride=(1, 2), crop=24, seed=12)
    other_seed.set_epoch(2)
    assert not torch.equal(other_seed[1], first)

    restored = pickle.loads(pickle.dumps(data))
    assert torch.equal(restored[1], first)


def test_frame_cache_matches_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clips = [write_clip(tmp_path / f"c{i}.mp4", moving_frames(7, seed=i)) for i in range(2)]
    clips.append(write_clip(tmp_path / "cut.mp4", moving_frames(6) + [255 - f for f in moving_frames(6)]))
    cache = tmp_path / "cache"
    options = dict(window=3, stride=(1, 2), crop=24, seed=4, max_side=40)
    decoded = FrameWindows(clips, **options)
    cached = FrameWindows(clips, cache_dir=cache, **options)
    assert len(decoded) == len(cached) and all(v.frame_file is not None for v in cached.videos)
    assert len(list(cache.glob("*.npy"))) == 3 and len(list(cache.glob("*.json"))) == 3
    for epoch in (0, 1):
        decoded.set_epoch(epoch)
        cached.set_epoch(epoch)
        for index in range(len(decoded)):
            assert torch.equal(decoded[index], cached[index]), (epoch, index)

    # a second run reads the index and frames from the cache without probing or decoding
    import vidgen.train.video_index as module

    def no_probe(path: Path) -> None:
        raise AssertionError(f"{path} was decoded again")

    monkeypatch.setattr(module, "probe", no_probe)
    again = FrameWindows(clips, cache_dir=cache, **options)
    cached.set_epoch(0)
    assert len(again) == len(cached) and all(torch.equal(again[i], cached[i]) for i in range(len(again)))



def test_index_only_cache(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", moving_frames(6))
    data = FrameWindows([clip], window=3, crop=24, cache_dir=tmp_path / "cache", cache_frames=False)
    assert data.videos[0].frame_file is None and data.videos[0].pts is not None
    assert list((tmp_path / "cache").glob("*.npy")) == [] and len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert torch.equal(data[2], FrameWindows([clip], window=3, crop=24)[2])

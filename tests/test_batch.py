from pathlib import Path

import pytest

from vidgen.errors import UsageError
from vidgen.video.batch import parse_shard, plan_jobs


def make_tree(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_folder_expands_recursively_and_mirrors_into_output(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", ["b.mp4", "a.MKV", "notes.txt", "sub/c.mov"])
    jobs, several = plan_jobs([tmp_path / "in"], tmp_path / "out")
    assert several
    assert [(j.input.relative_to(tmp_path / "in").as_posix(), j.output.relative_to(tmp_path / "out").as_posix())
            for j in jobs] == [("a.MKV", "a.MKV"), ("b.mp4", "b.mp4"), ("sub/c.mov", "sub/c.mov")]


def test_shards_partition_the_inputs_deterministically(tmp_path: Path) -> None:
    names = [f"clip{i:03d}.mp4" for i in range(60)]
    make_tree(tmp_path, names)
    shares = [{j.input.name for j in plan_jobs([tmp_path], tmp_path / "out", (k, 3))[0]} for k in (1, 2, 3)]
    assert set().union(*shares) == set(names)
    assert sum(len(s) for s in shares) == len(names)
    assert all(8 <= len(s) <= 32 for s in shares)  # a hash spreads them, not one shard taking all
    again = {j.input.name for j in plan_jobs([tmp_path], tmp_path / "other", (2, 3))[0]}
    assert again == shares[1]


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b", "3"])
def test_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_shard(text)


def test_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no video files"):
        plan_jobs([tmp_path], None)

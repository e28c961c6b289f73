"""Shared fixtures: an isolated VIDGEN_HOME for every test, and a tiny clip (helpers in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import moving_frames, write_clip


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own VIDGEN_HOME and is offline unless it opts back in."""
    home = tmp_path_factory.mktemp("vidgen_home")
    monkeypatch.setenv("VIDGEN_HOME", str(home))
    monkeypatch.setenv("VIDGEN_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "huggingface"))  # the Hub's cache, isolated too
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A 9-frame 64x48 24 fps H.264 clip with known motion."""
    return write_clip(tmp_path / "clip.mp4", moving_frames(9))

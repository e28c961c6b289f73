"""Where vidgen keeps its state: VIDGEN_HOME (default: the user cache dir) and the weights cache under it."""

from __future__ import annotations

import os
from pathlib import Path


def vidgen_home() -> Path:
    """Root of vidgen's state; `$VIDGEN_HOME` overrides the platform's user cache directory."""
    override = os.environ.get("VIDGEN_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("vidgen"))


def weights_dir() -> Path:
    """Canonical converted `.safetensors` files, one per registry entry."""
    return vidgen_home() / "weights"


def downloads_dir() -> Path:
    """Raw artefacts as fetched from their sources (zips, pickles, wheels), kept for re-verification."""
    return vidgen_home() / "downloads"


def user_registry_path() -> Path:
    """The user's overlay registry (models added with `vidgen models add`)."""
    return vidgen_home() / "models.toml"


def offline() -> bool:
    """True when VIDGEN_OFFLINE is set to a truthy value: never touch the network."""
    return os.environ.get("VIDGEN_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")

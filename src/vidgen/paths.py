"""Where vidgen keeps its state.

- The cache (`vidgen_home()`: `$VIDGEN_HOME`, else the platform's user cache directory, e.g.
  ~/.cache/vidgen): what can be fetched again, the canonical `.safetensors` of registry entries
  (`weights/`) and raw artefacts of non-Hub sources (`downloads/`).
- The user's data (`data_dir()`: `$VIDGEN_HOME` too when set, else the platform's user data directory,
  e.g. ~/.local/share/vidgen): the registry overlay (`models.toml`) and the models added with
  `vidgen models add` (`models/`), which no cache cleaner may delete.
- Hugging Face Hub downloads go to the Hub's own cache (`hf_cache_dir()`: `$HF_HUB_CACHE`, else
  `$HF_HOME/hub`, else ~/.cache/huggingface/hub), shared with every other Hub tool; `$HF_TOKEN` is used by
  huggingface_hub as usual.
- `offline()`: `VIDGEN_OFFLINE=1` or `HF_HUB_OFFLINE=1`, for every kind of source.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = ("1", "true", "yes", "on")


def vidgen_home() -> Path:
    """Root of vidgen's cache; `$VIDGEN_HOME` overrides the platform's user cache directory."""
    override = os.environ.get("VIDGEN_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("vidgen"))


def data_dir() -> Path:
    """Root of the user's own data (overlay registry, added models); `$VIDGEN_HOME` when set."""
    override = os.environ.get("VIDGEN_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("vidgen"))


def weights_dir() -> Path:
    """Canonical converted `.safetensors` files, one per registry entry."""
    return vidgen_home() / "weights"


def downloads_dir() -> Path:
    """Raw artefacts as fetched from their non-Hub sources (zips, pickles, wheels), kept for re-verification."""
    return vidgen_home() / "downloads"


def user_registry_path() -> Path:
    """The user's overlay registry (models added with `vidgen models add`)."""
    return data_dir() / "models.toml"


def user_models_dir() -> Path:
    """Canonical weights of the models the user added (`vidgen models add`)."""
    return data_dir() / "models"


def hf_cache_dir() -> Path:
    """The Hugging Face Hub cache, as huggingface_hub resolves it from the environment (read at each call)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def offline() -> bool:
    """True when VIDGEN_OFFLINE is set (to anything but 0/false/no) or HF_HUB_OFFLINE is (1/true/yes/on, as
    huggingface_hub reads it): never touch the network, for any kind of source."""
    ours = os.environ.get("VIDGEN_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")
    return ours or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE

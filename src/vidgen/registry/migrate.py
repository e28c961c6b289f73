"""Once: move the user's models out of the cache directory, where earlier versions kept them.

Earlier versions kept the registry overlay (`models.toml`) and the weights of added models (`models/`) in
the cache directory, which cache cleaners empty. When VIDGEN_HOME is not set and the data directory has
neither while the cache has them, both are moved there (the overlay's paths to the weights rewritten)
and one line says so. With VIDGEN_HOME set, cache and data share that folder and nothing moves.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from vidgen import paths
from vidgen.files import atomic_output

log = logging.getLogger("vidgen.registry")


def migrate_user_data() -> bool:
    """Move an old overlay and its models into the data directory; True when something moved."""
    if os.environ.get("VIDGEN_HOME"):
        return False
    old_home, new_home = paths.vidgen_home(), paths.data_dir()
    old_overlay, old_models = old_home / "models.toml", old_home / "models"
    new_overlay, new_models = paths.user_registry_path(), paths.user_models_dir()
    if old_home == new_home or not old_overlay.is_file() or new_overlay.exists() or new_models.exists():
        return False
    new_home.mkdir(parents=True, exist_ok=True)
    if old_models.is_dir():
        shutil.move(str(old_models), str(new_models))
    text = old_overlay.read_text(encoding="utf-8")
    for old, new in ((old_models.resolve(), new_models), (old_models, new_models)):
        text = text.replace(str(old), str(new))
    with atomic_output(new_overlay) as tmp:
        tmp.write_text(text, encoding="utf-8")
    old_overlay.unlink()
    log.warning("moved your models (%s and %s) from the cache directory to %s", old_overlay.name,
                Path(old_models).name, new_home)
    return True

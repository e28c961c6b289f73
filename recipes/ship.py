"""Copy trained weights into weights/ (packaged into the wheel as vidgen/weights/) for a models.toml entry."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def ship(source: Path, name: str) -> Path:
    """weights/NAME.safetensors from `source`; prints the file's sha256 and size, which its entry pins as its
    own sha256 and its file source's: the canonical bytes themselves, loaded where they are installed."""
    target = WEIGHTS / f"{name}.safetensors"
    target.parent.mkdir(exist_ok=True)
    if Path(source).resolve() != target.resolve():  # re-shipping the file already there is a no-op copy
        shutil.copyfile(source, target)
    print(f"shipped {target} sha256 {hashlib.sha256(target.read_bytes()).hexdigest()} size {target.stat().st_size}")
    return target

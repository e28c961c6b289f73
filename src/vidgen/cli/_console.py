"""The one rich Console for human output (stderr); JSON goes to stdout through `emit_json`."""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def emit_json(obj: Any) -> None:
    """One JSON object per line on stdout, flushed, so scripts can stream results."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()

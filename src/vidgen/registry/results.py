"""What re-hashing an entry's cached weights found (`vidgen models verify`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidgen.registry.entries import ModelEntry


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of re-hashing one entry's cached weights."""

    entry: ModelEntry
    status: Literal["ok", "missing", "mismatch"]
    path: Path | None  # None for weightless entries
    expected: str | None
    actual: str | None
    note: str = ""  # what was checked against what, where that is not simply the entry's sha256

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.entry.name,
            "status": self.status,
            "path": str(self.path) if self.path else None,
            "expected": self.expected,
            "actual": self.actual,
        }
        if self.note:
            data["note"] = self.note
        return data

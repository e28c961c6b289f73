"""Typed errors raised by library code; the CLI maps each to one line, a hint and an exit code.

Text kept from third-party errors goes through `short_reason`: libraries' messages may span lines, carry
terminal colour codes (torch's unpickling errors do) or repeat boilerplate (safetensors' "Error while
deserializing header: "); a reason kept from them is one line, free of escape codes, and short.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_BOILERPLATE = ("Error while deserializing header: ",)
MAX_REASON = 120


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences (colours, cursor moves)."""
    return _ANSI.sub("", text)


def short_reason(err: BaseException | str, limit: int = MAX_REASON) -> str:
    """The first non-empty line of an error's text, without escape codes, cut to `limit` characters."""
    text = strip_ansi(str(err))
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    for prefix in _BOILERPLATE:
        line = line.removeprefix(prefix)
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


class VidgenError(Exception):
    """Base class. `hint` tells the user what to do next; `exit_code` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(VidgenError):
    """A bad option value or combination (exit code 2, like Click's usage errors)."""

    exit_code = 2


class InputNotFoundError(VidgenError):
    """An input path does not exist."""


class UnsupportedVideoError(VidgenError):
    """A file that cannot be decoded as video, or has too few frames for the task."""


class OutputExistsError(VidgenError):
    """The output exists and --overwrite was not given, or the output would overwrite an input."""


class UnknownModelError(VidgenError):
    """A model name or alias that the registry does not know."""


class UnknownArchError(VidgenError):
    """An architecture name that no builder is registered for."""


class WeightsIntegrityError(VidgenError):
    """A downloaded or cached file whose sha256 differs from the pinned one."""


class WeightsUnavailableError(VidgenError):
    """Weights that are not cached and cannot be fetched (offline, network error, missing source)."""


class RegistryError(VidgenError):
    """A malformed models.toml entry or overlay."""


class DeviceError(VidgenError):
    """A requested device that this machine does not have."""


class InsufficientMemoryError(VidgenError):
    """A job whose estimated (or actual) peak memory exceeds what the device has available."""


class OutputLockedError(VidgenError):
    """Another run holds the lock on this output (or registry file)."""


class OutputNotWritableError(VidgenError):
    """The output's folder cannot be written (read-only, permissions, a full or missing disk)."""


class RunFileError(VidgenError):
    """A run folder's file (state, weights, config, split) that is damaged or was not written by vidgen train."""


class RunFolderError(VidgenError):
    """A training run folder that cannot be created or used (permissions, a file in its place)."""

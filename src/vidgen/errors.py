"""Typed errors raised by library code; the CLI maps each to one line, a hint and an exit code."""

from __future__ import annotations


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

"""vidgen: frame interpolation and other video models behind one CLI and one registry.

Python API (the CLI is a thin layer over it; docs/api.md documents every name)::

    import vidgen
    result = vidgen.interpolate("in.mp4", "out.mp4", factor=4, model="rife")
    result = vidgen.upscale("in.mp4", "big.mp4", factor=2, model="lanczos", codec="libx264", crf=18)
    up = vidgen.Upscaler(model="lanczos", factor=2)      # frames in numpy: frame() and stream()

Files: `interpolate`, `upscale`, `reconstruct`, `fuse`, `generate` (each returns its result dataclass) and
`evaluate`. Frames: `Interpolator`, `Upscaler`, `Reconstructor`. Errors: `VidgenError` and its subclasses.
`import vidgen` loads neither torch nor the tasks: each name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vidgen.errors import (
    DeviceError,
    InputNotFoundError,
    InsufficientMemoryError,
    OutputExistsError,
    OutputLockedError,
    OutputNotWritableError,
    RegistryError,
    RunFileError,
    RunFolderError,
    UnknownArchError,
    UnknownModelError,
    UnsupportedVideoError,
    UsageError,
    VidgenError,
    WeightsIntegrityError,
    WeightsUnavailableError,
)

if TYPE_CHECKING:  # what type checkers see; at run time `__getattr__` imports these on first use
    from vidgen.api import EvaluationResult, evaluate, fuse, generate, interpolate, reconstruct, upscale
    from vidgen.tasks.fuse.pipeline import FuseResult
    from vidgen.tasks.generate.pipeline import GenerateResult
    from vidgen.tasks.interpolate.frames import Interpolator
    from vidgen.tasks.interpolate.job import InterpolationResult
    from vidgen.tasks.reconstruct.frames import Reconstructor
    from vidgen.tasks.reconstruct.pipeline import ReconstructResult
    from vidgen.tasks.upscale.frames import Upscaler
    from vidgen.tasks.upscale.pipeline import UpscaleResult
    from vidgen.video.streams import StreamInterrupted

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use (so `import vidgen` stays light and torch-free).
_LAZY = {
    "interpolate": "vidgen.api",
    "upscale": "vidgen.api",
    "reconstruct": "vidgen.api",
    "fuse": "vidgen.api",
    "generate": "vidgen.api",
    "evaluate": "vidgen.api",
    "EvaluationResult": "vidgen.api",
    "InterpolationResult": "vidgen.tasks.interpolate.pipeline",
    "UpscaleResult": "vidgen.tasks.upscale.pipeline",
    "ReconstructResult": "vidgen.tasks.reconstruct.pipeline",
    "FuseResult": "vidgen.tasks.fuse.pipeline",
    "GenerateResult": "vidgen.tasks.generate.pipeline",
    "Interpolator": "vidgen.tasks.interpolate.frames",
    "Upscaler": "vidgen.tasks.upscale.frames",
    "Reconstructor": "vidgen.tasks.reconstruct.frames",
    "StreamInterrupted": "vidgen.video.streams",
}

__all__ = [
    # files
    "evaluate",
    "fuse",
    "generate",
    "interpolate",
    "reconstruct",
    "upscale",
    # results
    "EvaluationResult",
    "FuseResult",
    "GenerateResult",
    "InterpolationResult",
    "ReconstructResult",
    "UpscaleResult",
    # frames
    "Interpolator",
    "Reconstructor",
    "Upscaler",
    # errors
    "DeviceError",
    "InputNotFoundError",
    "InsufficientMemoryError",
    "OutputExistsError",
    "OutputLockedError",
    "OutputNotWritableError",
    "RegistryError",
    "RunFileError",
    "RunFolderError",
    "StreamInterrupted",
    "UnknownArchError",
    "UnknownModelError",
    "UnsupportedVideoError",
    "UsageError",
    "VidgenError",
    "WeightsIntegrityError",
    "WeightsUnavailableError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """The lazily imported names of `_LAZY`, cached in the module once loaded."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vidgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

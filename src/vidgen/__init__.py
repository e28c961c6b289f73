"""vidgen: frame interpolation and other video models behind one CLI and one registry.

Python API (the CLI is a thin layer over it)::

    import vidgen
    result = vidgen.interpolate("in.mp4", "out.mp4", factor=4, model="rife")
    interp = vidgen.Interpolator(model="rife")          # frames in numpy: pair() and stream()
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Interpolator", "__version__", "interpolate"]


def interpolate(*args: Any, **kwargs: Any) -> Any:
    """Interpolate a video to a higher frame rate; see `vidgen.tasks.interpolate.pipeline.interpolate_video`."""
    from vidgen.tasks.interpolate.pipeline import interpolate_video

    return interpolate_video(*args, **kwargs)


def __getattr__(name: str) -> Any:
    """`vidgen.Interpolator` on first use (importing vidgen stays free of torch)."""
    if name == "Interpolator":
        from vidgen.tasks.interpolate.frames import Interpolator

        return Interpolator
    raise AttributeError(f"module 'vidgen' has no attribute {name!r}")

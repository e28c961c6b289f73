"""Architecture registry: code registers builders, models.toml entries refer to them by name.

An `ArchSpec` declares what the pipelines need to know about a model instead of letting them
discover it: the task, whether it needs weights, the spatial multiple inputs are padded to,
whether it only predicts the temporal midpoint, and how to map upstream checkpoint keys.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vidgen.errors import UnknownArchError


@dataclass(frozen=True)
class ArchSpec:
    name: str
    task: str
    builder: Callable[..., Any]
    needs_weights: bool = True
    spatial_multiple: int = 1
    midpoint_only: bool = False
    dtypes: tuple[str, ...] = ("float32",)
    tiling: bool = False
    convert_state_dict: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def build(self, **config: Any) -> Any:
        return self.builder(**{**self.defaults, **config})


_ARCHS: dict[str, ArchSpec] = {}

# Modules that register architectures when imported; listed here so lookups need no scanning.
_ARCH_MODULES = (
    "vidgen.models.ifnet",
    "vidgen.models.classical_flow",
    "vidgen.models.blend",
    "vidgen.models.frame_interp_net",
    "vidgen.models.frame_interp_attn",
    "vidgen.models.keyframe_interp",
    "vidgen.models.v2v",
    "vidgen.models.vqvae",
    "vidgen.models.fusion",
)


def register_arch(name: str, *, task: str, **capabilities: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a builder function: `@register_arch("ifnet", task="interpolate", spatial_multiple=32)`."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        _ARCHS[name] = ArchSpec(name=name, task=task, builder=builder, **capabilities)
        return builder

    return wrap


def _load_arch_modules() -> None:
    for module in _ARCH_MODULES:
        importlib.import_module(module)


def get_arch(name: str) -> ArchSpec:
    _load_arch_modules()
    try:
        return _ARCHS[name]
    except KeyError:
        known = ", ".join(sorted(_ARCHS))
        raise UnknownArchError(f"unknown architecture {name!r}", hint=f"known architectures: {known}") from None


def list_archs(task: str | None = None) -> list[ArchSpec]:
    _load_arch_modules()
    return sorted((a for a in _ARCHS.values() if task is None or a.task == task), key=lambda a: a.name)

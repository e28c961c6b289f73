"""Architecture registry: code registers builders, models.toml entries refer to them by name.

An `ArchSpec` declares what the pipelines need to know about a model instead of letting them
discover it: the task, whether it needs weights, the spatial multiple inputs are padded to,
whether it only predicts the temporal midpoint, and how to map upstream checkpoint keys.

`companions` names files an arch needs from beside the upstream weights (a tokenizer vocabulary,
say); each source pins them (`companions = { "vocab.txt" = "<sha256>" }` in models.toml) and
`convert_state_dict(state, {name: bytes})` folds them into the canonical state dict. `vidgen models
add` calls it with the state alone, since its input is already canonical.
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
    convert_state_dict: Callable[..., dict[str, Any]] | None = None
    companions: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # "diffusers": the builder loads a folder, `build(pretrained=<local folder>, **config)` (registry/snapshots.py)
    format: str = "safetensors"

    def __post_init__(self) -> None:
        if self.companions and self.convert_state_dict is None:
            raise ValueError(f"arch {self.name!r} declares companions but no convert_state_dict to use them")

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
    "vidgen.models.diffusers.vae",
    "vidgen.models.diffusers.t2v",
    "vidgen.text.minilm",
    "vidgen.models.video_gpt",
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

"""Architectures: code registers builders beside the models they build; registry entries refer to them by name.

`register_arch(name, task=..., **declared)` files a builder under `name` with an `ArchSpec`: the task,
whether it needs weights, how upstream checkpoints map onto it, the other registry entries it is built
with (`requires`), and its `Capabilities`, what pipelines may rely on instead of probing the model.
A model whose capabilities depend on its config (a tokenizer's spatial multiple follows its depth)
declares them itself, as a `capabilities` attribute (`DeclaresCapabilities`); the registry's loader
prefers that over the arch's static declaration.

This module sits below models and text (which register here) and the registry (which reads here); it
imports nothing of vidgen but its errors. Which modules register is the registry's list
(`vidgen.registry.archs`), so lookups need no scanning.

`companions` names files an arch needs from beside the upstream weights (a tokenizer vocabulary, say);
each source pins them (`companions = { "vocab.txt" = "<sha256>" }` in models.toml) and
`convert_state_dict(state, {name: bytes})` folds them into the canonical state dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

HALF_PRECISION = ("float16", "bfloat16")
ALL_FLOAT_DTYPES = ("float32", *HALF_PRECISION)


@dataclass(frozen=True)
class Capabilities:
    """What a model declares to the pipelines that run it. Every field has the default of a plain model.

    Shapes: inputs are padded to multiples of `spatial_multiple` pixels (and, for video autoencoders,
    `temporal_offset + k * temporal_multiple` frames). `dtypes` are the parameter dtypes it runs in
    (anything besides float32 allows fp16/bf16 inference); `tiling` says it runs on overlapping tiles.
    """

    spatial_multiple: int = 1
    dtypes: tuple[str, ...] = ("float32",)
    tiling: bool = False
    # interpolate: the network predicts only the temporal midpoint (other times by bisection) ...
    midpoint_only: bool = False
    # ... and offers `midpoint_with_flow` + `retime`, to place a frame at any time from one midpoint pass.
    retimes: bool = False
    # reconstruct: frames per latent step, frames coded before the first step, preferred chunk length,
    # whether frames are coded independently (no chunk overlap needed), and whether latents are code ids.
    temporal_multiple: int = 1
    temporal_offset: int = 0
    chunk_frames: int | None = None
    frames_independent: bool = False
    discrete: bool = False
    # fuse and upscale: frames of context each side of a chunk that reach its outputs; fuse: a `finish(fused, views)`
    # step that needs whole frames (run once after the tiles are put together).
    temporal_context: int = 0
    finishes_whole_frames: bool = False
    # upscale: output pixels per input pixel along each side (an x4 network: 4).
    scale: int = 1

    @property
    def half_precision(self) -> bool:
        return any(dtype in HALF_PRECISION for dtype in self.dtypes)


CAPABILITY_FIELDS = frozenset(f.name for f in dataclasses.fields(Capabilities))


@runtime_checkable
class DeclaresCapabilities(Protocol):
    """A built model whose capabilities follow its config: it says them itself."""

    @property
    def capabilities(self) -> Capabilities: ...


@dataclass(frozen=True)
class ArchSpec:
    name: str
    task: str
    builder: Callable[..., Any]
    needs_weights: bool = True
    capabilities: Capabilities = Capabilities()
    convert_state_dict: Callable[..., dict[str, Any]] | None = None
    companions: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # "diffusers": the builder loads a folder, `build(pretrained=<local folder>, **config)` (registry/snapshots.py)
    format: str = "safetensors"
    # Config keys naming other registry entries the model is built with, and the task each must have:
    # the loader resolves them (`vidgen.registry.load_for_task`); the model never loads an entry itself.
    requires: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.companions and self.convert_state_dict is None:
            raise ValueError(f"arch {self.name!r} declares companions but no convert_state_dict to use them")

    def build(self, **config: Any) -> Any:
        return self.builder(**{**self.defaults, **config})


ARCHS: dict[str, ArchSpec] = {}


def register_arch(name: str, *, task: str, **declared: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a builder: `@register_arch("ifnet", task="interpolate", spatial_multiple=32, midpoint_only=True)`.

    Keywords that are `Capabilities` fields become the arch's capabilities; the rest are `ArchSpec` fields.
    """
    capabilities = Capabilities(**{k: v for k, v in declared.items() if k in CAPABILITY_FIELDS})
    options = {k: v for k, v in declared.items() if k not in CAPABILITY_FIELDS}

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        ARCHS[name] = ArchSpec(name=name, task=task, builder=builder, capabilities=capabilities, **options)
        return builder

    return wrap


def capabilities_of(model: Any, spec: ArchSpec) -> Capabilities:
    """The model's own declaration when it makes one (`DeclaresCapabilities`), else its arch's."""
    return model.capabilities if isinstance(model, DeclaresCapabilities) else spec.capabilities

"""Any super-resolution or restoration network spandrel (PyPI, MIT) knows: ESRGAN, Compact, SwinIR, HAT, DAT,
OmniSR, SPAN, ... Arch `spandrel`, for models users bring (`vidgen models add NAME --weights FILE`).

spandrel detects an architecture and its hyper-parameters from a state dict; it has no config of its own.
So `SpandrelSR(architecture, scale)` is empty until its weights are loaded: `load_state_dict` runs spandrel's
detection on the tensors it is given, checks that they are the architecture and scale the registry entry
recorded (an RGB image-to-image model), and builds the network then; `state_dict` is the network's own.
Only tensors reach spandrel (vidgen reads checkpoints itself, pickles with `torch.load(weights_only=True)`);
spandrel's own file loading, which can run TorchScript, is never used.

`detect(state)` says what a state dict is, for `vidgen models add`. spandrel is an optional dependency
(`pip install 'vidgen[sr]'`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vidgen.archs import ALL_FLOAT_DTYPES, Capabilities, register_arch

PURPOSES = ("SR", "Restoration")  # image -> image at a scale; not face restoration or inpainting


class SpandrelUnavailable(ImportError):
    """spandrel is not installed."""


@dataclass(frozen=True)
class Detected:
    architecture: str  # spandrel's architecture id, e.g. "ESRGAN"
    name: str  # its display name
    scale: int
    purpose: str
    tags: tuple[str, ...]


def _spandrel() -> Any:
    try:
        import spandrel
    except ImportError:
        raise SpandrelUnavailable("spandrel is not installed") from None
    return spandrel


def _describe(state: Mapping[str, Tensor]) -> Any:
    """spandrel's model descriptor for `state` (raises ValueError when it is not an RGB SR/restoration model)."""
    spandrel = _spandrel()
    canonical = spandrel.canonicalize_state_dict(dict(state))
    try:
        descriptor = spandrel.MAIN_REGISTRY.load(canonical)
    except spandrel.UnsupportedModelError:
        raise ValueError("not an architecture spandrel knows") from None
    except Exception as err:  # detection matched but the tensors do not build: a damaged or odd checkpoint
        raise ValueError(f"spandrel could not build it ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose not in PURPOSES:
        raise ValueError(f"a {descriptor.architecture.name} {descriptor.purpose} model, not super-resolution")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ValueError(f"a {descriptor.architecture.name} model with {descriptor.input_channels} input and "
                         f"{descriptor.output_channels} output channels, not RGB")
    return descriptor


def detect(state: Mapping[str, Tensor]) -> Detected:
    """What spandrel makes of `state`; ValueError when it is no RGB super-resolution model it knows."""
    descriptor = _describe(state)
    return Detected(descriptor.architecture.id, descriptor.architecture.name, int(descriptor.scale),
                    descriptor.purpose, tuple(descriptor.tags))


def canonical_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The state dict as spandrel reads it (wrappers such as `params_ema` and prefixes such as `module.` removed)."""
    return dict(_spandrel().canonicalize_state_dict(dict(state)))


class SpandrelSR(nn.Module):
    """See the module docstring. `forward(x (N,3,h,w) in [0,1]) -> (N,3,h*scale,w*scale)`, frame by frame
    through spandrel's call (which pads to the model's size requirements and crops back)."""

    def __init__(self, architecture: str, scale: int) -> None:
        super().__init__()
        self.architecture = architecture
        self.scale = int(scale)
        self.net: nn.Module | None = None
        self._descriptor: Any = None

    @property
    def capabilities(self) -> Capabilities:
        descriptor = self._descriptor
        if descriptor is None:
            return Capabilities(scale=self.scale)
        dtypes = ("float32",) + ("float16",) * descriptor.supports_half + ("bfloat16",) * descriptor.supports_bfloat16
        tiling = descriptor.tiling.name != "INTERNAL"
        return Capabilities(spatial_multiple=descriptor.size_requirements.multiple_of, dtypes=dtypes, tiling=tiling,
                            scale=self.scale)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        try:
            descriptor = _describe(state_dict)
        except ValueError as err:
            raise RuntimeError(f"spandrel: {err}") from None
        if descriptor.architecture.id != self.architecture or int(descriptor.scale) != self.scale:
            raise RuntimeError(f"spandrel detects {descriptor.architecture.id} x{descriptor.scale} in these weights, "
                               f"not {self.architecture} x{self.scale}")
        self._descriptor = descriptor
        self.net = descriptor.model
        return nn.modules.module._IncompatibleKeys([], [])

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:  # the network's own keys, as stored
        if self.net is None:
            return {}
        return self.net.state_dict(*args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if self._descriptor is None:
            raise RuntimeError("SpandrelSR has no weights loaded")
        return torch.cat([self._descriptor(x[i:i + 1]) for i in range(x.shape[0])])


@register_arch("spandrel", task="upscale", dtypes=ALL_FLOAT_DTYPES, tiling=True, convert_state_dict=canonical_state)
def build_spandrel(architecture: str = "", scale: int = 4) -> SpandrelSR:
    """Any SR network spandrel detects (ESRGAN, Compact, SwinIR, HAT, ...), from `vidgen models add`; inference only."""
    return SpandrelSR(architecture, scale)

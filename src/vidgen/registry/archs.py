"""The architectures the registry knows: the modules that register them (`vidgen.archs.register_arch`,
beside each model) are imported on the first lookup, from this list, so lookups need no scanning."""

from __future__ import annotations

import importlib

from vidgen.archs import ARCHS, ArchSpec, Capabilities, capabilities_of, register_arch
from vidgen.errors import UnknownArchError

__all__ = ["ArchSpec", "Capabilities", "capabilities_of", "get_arch", "list_archs", "register_arch"]


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
    "vidgen.models.ensemble",
    "vidgen.models.diffusers.vae",
    "vidgen.models.diffusers.t2v",
    "vidgen.text.minilm",
    "vidgen.models.video_gpt",
    "vidgen.models.rrdbnet",
    "vidgen.models.srvgg",
    "vidgen.models.resize",
    "vidgen.models.spandrel_sr",
    "vidgen.models.vsr",
)


def _load_arch_modules() -> None:
    for module in _ARCH_MODULES:
        importlib.import_module(module)


def get_arch(name: str) -> ArchSpec:
    _load_arch_modules()
    try:
        return ARCHS[name]
    except KeyError:
        known = ", ".join(sorted(ARCHS))
        raise UnknownArchError(f"unknown architecture {name!r}", hint=f"known architectures: {known}") from None


def list_archs(task: str | None = None) -> list[ArchSpec]:
    _load_arch_modules()
    return sorted((a for a in ARCHS.values() if task is None or a.task == task), key=lambda a: a.name)

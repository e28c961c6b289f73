"""One way to load a model: `load_for_task(task, name, device)` gives a `LoadedModel`, the built model with
its entry, its declared `Capabilities` and the other entries it is built with, cached per entry and device.

`load_model` builds a fresh, uncached model (what training fine-tunes; it may change its weights).
Models never load registry entries themselves: an arch's `requires` names the config keys that hold
other entries' names (a generator's tokenizer and text encoder), and the loader loads those too.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from vidgen.archs import Capabilities, capabilities_of
from vidgen.errors import DeviceError, RegistryError, UnknownModelError, UsageError, VidgenError
from vidgen.registry.entries import ModelEntry

log = logging.getLogger("vidgen.registry")

# Config values of a `requires` key that name no entry: unset, or a model's own part ("words": a
# generator's built-in word encoder).
NO_ENTRY = ("", "words")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A built model ready to run: `model` (an nn.Module in eval mode on its device, or a weightless
    engine), what it declares (`capabilities`), and the entries it was built with (`parts`, by config key).

    Compared and hashed by identity: `load_for_task` hands out one object per entry and device.
    """

    entry: ModelEntry
    model: Any
    capabilities: Capabilities
    parts: dict[str, LoadedModel] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.entry.name


def load_for_task(task: str, name: str | ModelEntry | None = None, device: str = "cpu",
                  no_default: VidgenError | None = None) -> LoadedModel:
    """The model `name` (a registry name or alias; None: the task's default) for `task`, loaded once per
    entry and device. A model of another task is a usage error naming both; `no_default` is raised
    instead of the registry's error when no name was given and the task has no default (a task says
    there how to get a model)."""
    from vidgen import registry

    if isinstance(name, ModelEntry):
        entry = name
    elif name:
        entry = registry.resolve(name)
    else:
        try:
            entry = registry.default_entry(task)
        except UnknownModelError:
            if no_default is None:
                raise
            raise no_default from None
    if entry.task != task:
        raise UsageError(f"--model {name}: is a {entry.task} model, not a {task} model",
                         hint=f"see `vidgen models list --task {task}`")
    return _load_cached(entry, str(device))


@functools.lru_cache(maxsize=8)
def _load_cached(entry: ModelEntry, device: str) -> LoadedModel:
    from vidgen.registry.archs import get_arch

    spec = get_arch(entry.arch)
    log.info("loading %s (%s) on %s", entry.name, entry.arch, device)
    parts = {key: load_for_task(required, entry.config.get(key), device)
             for key, required in spec.requires.items() if entry.config.get(key, "") not in NO_ENTRY}
    _, model = load_model(entry, device)
    return LoadedModel(entry, model, capabilities_of(model, spec), parts)


def load_model(name_or_entry: str | ModelEntry, device: str = "cpu") -> tuple[ModelEntry, Any]:
    """Build an entry's architecture from its config; nn.Modules get their weights (strictly), eval(), .to(device).

    Uncached: every call builds a new model.
    """
    from vidgen import registry
    from vidgen.registry.archs import get_arch

    entry = name_or_entry if isinstance(name_or_entry, ModelEntry) else registry.resolve(name_or_entry)
    spec = get_arch(entry.arch)
    if spec.task != entry.task:
        raise RegistryError(
            f"{entry.origin}: entry {entry.name!r} has task {entry.task!r}, its arch {spec.name!r} is {spec.task!r}"
        )
    if spec.needs_weights != entry.needs_weights:
        needs = "needs" if spec.needs_weights else "takes no"
        raise RegistryError(
            f"{entry.origin}: entry {entry.name!r} disagrees with arch {spec.name!r}, which {needs} weights"
        )
    if spec.format != entry.format:
        raise RegistryError(
            f"{entry.origin}: entry {entry.name!r} has format {entry.format!r}, "
            f"its arch {spec.name!r} reads {spec.format!r}"
        )
    if entry.format == "diffusers":  # say what to install before downloading gigabytes it could not load
        from vidgen.models.diffusers import require_diffusers

        require_diffusers()
    weights = registry.ensure_weights(entry) if entry.needs_weights else None
    folder = {"pretrained": str(weights)} if entry.format == "diffusers" else {}  # diffusers builders load it
    try:
        model = spec.build(**entry.config, **folder)
    except TypeError as err:
        raise RegistryError(
            f"{entry.origin}: entry {entry.name!r}: bad `config` for arch {spec.name!r}: {err}"
        ) from None
    import torch

    if not isinstance(model, torch.nn.Module):
        return entry, model
    if weights is not None and not folder:
        from vidgen.registry.convert import load_safetensors

        state = load_safetensors(weights)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise RegistryError(
                f"{entry.name}: weights do not fit arch {spec.name!r} built with config {dict(entry.config)}",
                hint=str(err).strip().splitlines()[0],
            ) from None
    model.eval()
    try:
        model.to(device)
    except (RuntimeError, AssertionError, ValueError) as err:  # torch reports a missing CUDA as AssertionError
        raise DeviceError(
            f"cannot place {entry.name} on {device!r}: {str(err).strip()}", hint="try --device cpu"
        ) from None
    return entry, model

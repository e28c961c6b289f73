"""`vidgen models add/remove`: the user's own models, as entries in the overlay registry.

Adding a model converts its weights once into a canonical `.safetensors` stored under
VIDGEN_HOME/models/, checks that it loads into its architecture, and writes an overlay entry whose
`file` source is that copy, pinned by its sha256 like every other entry. Removing deletes the entry,
the stored copy and the cached weights. Entries shipped with vidgen cannot be removed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from vidgen import _toml, paths
from vidgen._atomic import atomic_output
from vidgen.errors import RegistryError, UsageError
from vidgen.registry.entries import ModelEntry, load_catalog, parse_registry, read_registry_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TAG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def user_models_dir() -> Path:
    return paths.vidgen_home() / "models"


def entry_name_for(name: str, arch: str) -> tuple[str, list[str]]:
    """`anime` for arch ifnet -> (`ifnet.anime`, [`anime`]); a full `ifnet.anime` is kept, no alias."""
    name = name.strip().lower()
    if name.startswith(f"{arch}."):
        return name, []
    if "." in name:
        raise UsageError(f"model name {name!r} must start with its arch ({arch}.) or contain no dot")
    if not _TAG.match(name):
        raise UsageError(f"model name {name!r}: use lowercase letters, digits, '-' and '_'")
    return f"{arch}.{name}", [name]


def _read_overlay() -> dict[str, Any]:
    path = paths.user_registry_path()
    if not path.is_file():
        return {"schema": 1, "models": {}}
    read_registry_file(path)  # validates; a broken overlay is reported, not overwritten
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data.setdefault("models", {})
    return data


def _write_overlay(data: dict[str, Any]) -> None:
    path = paths.user_registry_path()
    parse_registry(data, str(path), base_dir=path.parent)  # never write an overlay that would not load
    text = ("# Your models (vidgen models add / remove). Same format as vidgen's models.toml;\n"
            "# entries here replace same-named shipped ones.\n\n" + _toml.dumps(data, inline_depth=2))
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def add_model(name: str, weights: Path, *, task: str, arch: str, config: dict[str, Any], license: str,
              description: str, default: bool = False, replace: bool = False) -> ModelEntry:
    """Register `weights` (any checkpoint vidgen can read) as a user model; returns the new entry."""
    import torch

    from vidgen.registry.archs import get_arch
    from vidgen.registry.cache import sha256_file
    from vidgen.registry.convert import _load_tensors, _state_dict, write_safetensors

    spec = get_arch(arch)
    if spec.task != task:
        raise UsageError(f"arch {arch!r} is for task {spec.task!r}, not {task!r}")
    if not spec.needs_weights:
        raise UsageError(f"arch {arch!r} takes no weights", hint="add it to models.toml with a config instead")
    entry_name, aliases = entry_name_for(name, arch)
    taken = {key: entry for entry in load_catalog() for key in (entry.name, *entry.aliases)}
    for key in (entry_name, *aliases):
        clash = taken.get(key)
        if clash is not None and not (replace and clash.name == entry_name and clash.origin == str(paths.user_registry_path())):
            raise UsageError(f"a model called {key!r} already exists ({clash.name})",
                             hint="pick another name, or `vidgen models remove` it first")
    weights = Path(weights)
    if not weights.is_file():
        raise UsageError(f"weights file {weights} does not exist")
    probe = ModelEntry(name=entry_name, aliases=tuple(aliases), task=task, arch=arch, config=config,
                       license=license, description=description, default=default, sha256=None, sources=())
    state = _state_dict(_load_tensors(weights), probe)
    if spec.convert_state_dict is not None:
        state = spec.convert_state_dict(state)
    try:
        spec.build(**config).load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"{weights} does not fit arch {arch!r} with config {config}",
                         hint=str(err).strip().splitlines()[0]) from None
    stored = user_models_dir() / f"{entry_name}.safetensors"
    with atomic_output(stored) as tmp:
        write_safetensors(tmp, {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()},
                          {"format": "pt", "arch": arch, "entry": entry_name, "license": license})
    digest = sha256_file(stored)
    table: dict[str, Any] = {
        "aliases": aliases, "task": task, "arch": arch, "license": license, "description": description,
        "default": default, "sha256": digest, "config": dict(config),
        "sources": [{"kind": "file", "path": str(stored.resolve()), "sha256": digest,
                     "size": stored.stat().st_size}],
    }
    data = _read_overlay()
    if default:
        for other in data["models"].values():
            if other.get("task") == task:
                other["default"] = False
    data["models"][entry_name] = table
    _write_overlay(data)
    from vidgen.registry import cached_path, resolve

    stale = cached_path(resolve(entry_name))
    stale.unlink(missing_ok=True)  # a replaced model must not be served from the old cache
    return resolve(entry_name)


def add_from_run(name: str, run_dir: Path, *, license: str, description: str | None, default: bool = False,
                 replace: bool = False) -> ModelEntry:
    """Register a `vidgen train` run's best weights (its last ones when it never validated)."""
    from vidgen.train.checkpoint import weights_path

    run_dir = Path(run_dir)
    weights = next((p for p in (weights_path(run_dir, "best"), weights_path(run_dir, "last")) if p.is_file()), None)
    if weights is None:
        raise UsageError(f"{run_dir} holds no best.safetensors or last.safetensors",
                         hint="pass the --out folder of a `vidgen train` run")
    return add_trained_weights(name, weights, license=license, description=description, default=default,
                               replace=replace, origin=run_dir.resolve().name)


def add_trained_weights(name: str, weights: Path, *, license: str, description: str | None, default: bool = False,
                        replace: bool = False, origin: str | None = None) -> ModelEntry:
    """Register a weights file written by `vidgen train` (copied out of its run, or trained on another
    machine): its metadata names the task, arch and config."""
    from vidgen.train.checkpoint import read_weights_metadata

    meta = read_weights_metadata(weights)
    metric = next((f"{k.removeprefix('val_')} {v:.2f}" for k, v in meta.items()
                   if k.startswith("val_") and isinstance(v, (int, float))), None)
    text = description or (f"{meta['arch']} trained with vidgen train ({origin or Path(weights).name}, "
                           f"step {meta.get('step')}" + (f", val {metric})" if metric else ")"))
    return add_model(name, weights, task=meta["task"], arch=meta["arch"], config=meta["config"], license=license,
                     description=text, default=default, replace=replace)


def remove_model(name: str) -> ModelEntry:
    """Delete a user model: its overlay entry, its stored weights and its cached weights."""
    from vidgen.registry import cached_path, resolve

    entry = resolve(name)
    overlay_path = paths.user_registry_path()
    if entry.origin != str(overlay_path):
        raise UsageError(f"{entry.name} ships with vidgen and cannot be removed",
                         hint="only models added with `vidgen models add` can be removed")
    data = _read_overlay()
    if entry.name not in data["models"]:
        raise RegistryError(f"{overlay_path}: entry {entry.name!r} not found in the overlay")
    del data["models"][entry.name]
    _write_overlay(data)
    for path in (cached_path(entry), user_models_dir() / f"{entry.name}.safetensors"):
        path.unlink(missing_ok=True)
    return entry


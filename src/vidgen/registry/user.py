"""`vidgen models add/remove`: the user's own models, as entries in the overlay registry.

Adding a model converts its weights once into a canonical `.safetensors` stored under
VIDGEN_HOME/models/ (named by entry and content hash, `ifnet.anime-<sha256[:16]>.safetensors`), checks
that it loads into its architecture, and writes an overlay entry whose `file` source is that copy, pinned
by its sha256 like every other entry. Removing deletes the entry, the stored copy and the cached weights.
Entries shipped with vidgen cannot be removed.

Every change holds the overlay's lock (`overlay_lock`) from reading the overlay to writing it back, so
parallel runs never lose each other's entries. The weights file is in place before the entry that names
it, and a replaced entry's old file is deleted only after the new entry is written: a run killed at any
point leaves every entry pointing at its own weights (at worst an unreferenced file stays behind).
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vidgen import paths, tomlw
from vidgen.errors import OutputLockedError, RegistryError, UsageError
from vidgen.files import atomic_output, output_lock, remove, temp_path_beside
from vidgen.files import replace as rename_over
from vidgen.registry.entries import ModelEntry, load_catalog, parse_registry, read_registry_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TAG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
LOCK_WAIT_S = 10.0  # how long a change waits for another run's change to the overlay to finish
_LOCK_POLL_S = 0.1


def user_models_dir() -> Path:
    return paths.user_models_dir()


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


@contextlib.contextmanager
def overlay_lock() -> Iterator[None]:
    """Hold the overlay's lock for the block: one change to the user's models at a time, across processes.

    Waits up to LOCK_WAIT_S for another run's change to finish, then raises OutputLockedError.
    """
    path = paths.user_registry_path()
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        lock = output_lock(path, what=str(path))
        try:
            lock.acquire()
            break
        except OutputLockedError as err:
            if time.monotonic() >= deadline:
                raise OutputLockedError(
                    err.message,
                    hint=f"another `vidgen models add/remove` is changing your models (waited {LOCK_WAIT_S:g} s); "
                    "run this command again when it has finished",
                ) from None
            time.sleep(_LOCK_POLL_S)
    try:
        yield
    finally:
        lock.release()


def _read_overlay() -> dict[str, Any]:
    path = paths.user_registry_path()
    if not path.is_file():
        return {"schema": 1, "models": {}}
    read_registry_file(path)  # validates; a broken overlay is reported, not overwritten
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data.setdefault("models", {})
    return data


def _overlay_text(data: dict[str, Any]) -> str:
    """The overlay file's text; raises RegistryError for data that would not load, so it is never written."""
    path = paths.user_registry_path()
    parse_registry(data, str(path), base_dir=path.parent)
    return ("# Your models (vidgen models add / remove). Same format as vidgen's models.toml;\n"
            "# entries here replace same-named shipped ones.\n\n" + tomlw.dumps(data, inline_depth=2))


def _write_overlay(text: str) -> None:
    with atomic_output(paths.user_registry_path(), durable=True) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _stored_file(table: Any) -> Path | None:
    """The weights file an overlay entry's `file` source names inside the user models folder, if any.

    Only files `models add` stored are ever deleted; a `file` source pointing elsewhere is the user's own.
    """
    if not isinstance(table, Mapping):
        return None
    folder = user_models_dir().resolve()
    for source in table.get("sources", []):
        if isinstance(source, Mapping) and source.get("kind") == "file" and isinstance(source.get("path"), str):
            path = Path(source["path"]).expanduser()
            path = path if path.is_absolute() else paths.user_registry_path().parent / path
            if path.parent.resolve() == folder:
                return folder / path.name
    return None


def _store_weights(entry_name: str, tensors: Mapping[str, Any], metadata: Mapping[str, str]) -> tuple[Path, str]:
    """Write canonical weights into the user models folder under a content-named file: (path, sha256)."""
    from vidgen.files import sha256_file
    from vidgen.registry.convert import write_safetensors

    staged = temp_path_beside(user_models_dir() / f"{entry_name}.safetensors")
    try:
        write_safetensors(staged, tensors, metadata)
        digest = sha256_file(staged)
        stored = user_models_dir().resolve() / f"{entry_name}-{digest[:16]}.safetensors"
        rename_over(staged, stored, durable=True)
    except BaseException:
        remove(staged)
        raise
    return stored, digest


def _check_name_free(entry_name: str, aliases: list[str], replace_own: bool) -> None:
    taken = {key: entry for entry in load_catalog() for key in (entry.name, *entry.aliases)}
    overlay = str(paths.user_registry_path())
    for key in (entry_name, *aliases):
        clash = taken.get(key)
        if clash is not None and not (replace_own and clash.name == entry_name and clash.origin == overlay):
            raise UsageError(f"a model called {key!r} already exists ({clash.name})",
                             hint="pick another name, or `vidgen models remove` it first")


def add_model(name: str, weights: Path, *, task: str, arch: str, config: dict[str, Any], license: str,
              description: str, default: bool = False, replace: bool = False) -> ModelEntry:
    """Register `weights` (any checkpoint vidgen can read) as a user model; returns the new entry.

    The checkpoint is read and checked against its arch before the overlay lock is taken; the lock is held
    from the name check to the overlay write (see the module docstring).
    """
    import torch

    from vidgen.registry.archs import get_arch
    from vidgen.registry.convert import load_tensors, state_dict_of

    spec = get_arch(arch)
    if spec.task != task:
        raise UsageError(f"arch {arch!r} is for task {spec.task!r}, not {task!r}")
    if not spec.needs_weights:
        raise UsageError(f"arch {arch!r} takes no weights", hint="add it to models.toml with a config instead")
    entry_name, aliases = entry_name_for(name, arch)
    _check_name_free(entry_name, aliases, replace)  # early, before a long conversion; again under the lock
    weights = Path(weights)
    if not weights.is_file():
        raise UsageError(f"weights file {weights} does not exist")
    probe = ModelEntry(name=entry_name, aliases=tuple(aliases), task=task, arch=arch, config=config,
                       license=license, description=description, default=default, sha256=None, sources=())
    state = state_dict_of(load_tensors(weights), probe)
    if spec.convert_state_dict is not None:
        state = spec.convert_state_dict(state)
    try:
        spec.build(**config).load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"{weights} does not fit arch {arch!r} with config {config}",
                         hint=str(err).strip().splitlines()[0]) from None
    tensors = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
    metadata = {"format": "pt", "arch": arch, "entry": entry_name, "license": license}
    with overlay_lock():
        _check_name_free(entry_name, aliases, replace)
        data = _read_overlay()
        previous = _stored_file(data["models"].get(entry_name))
        stored, digest = _store_weights(entry_name, tensors, metadata)
        try:
            if default:
                for other in data["models"].values():
                    if other.get("task") == task:
                        other["default"] = False
            data["models"][entry_name] = {
                "aliases": aliases, "task": task, "arch": arch, "license": license, "description": description,
                "default": default, "sha256": digest, "config": dict(config),
                "sources": [{"kind": "file", "path": str(stored), "sha256": digest,
                             "size": stored.stat().st_size}],
            }
            _write_overlay(_overlay_text(data))
        except BaseException:
            if stored != previous:
                stored.unlink(missing_ok=True)
            raise
        if previous is not None and previous != stored:
            previous.unlink(missing_ok=True)
        from vidgen.registry import cache_file, resolve

        entry = resolve(entry_name)
        cache_file(entry).unlink(missing_ok=True)  # a copy an older vidgen made of a replaced model
    return entry


def add_from_run(name: str, run_dir: Path, *, license: str, description: str | None, default: bool = False,
                 replace: bool = False) -> ModelEntry:
    """Register a `vidgen train` run's best weights (its last ones when it never validated)."""
    from vidgen.registry.run_weights import weights_path

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
    from vidgen.registry.run_weights import read_weights_metadata

    meta = read_weights_metadata(weights)
    metric = next((f"{k.removeprefix('val_')} {v:.2f}" for k, v in meta.items()
                   if k.startswith("val_") and isinstance(v, (int, float))), None)
    text = description or (f"{meta['arch']} trained with vidgen train ({origin or Path(weights).name}, "
                           f"step {meta.get('step')}" + (f", val {metric})" if metric else ")"))
    return add_model(name, weights, task=meta["task"], arch=meta["arch"], config=meta["config"], license=license,
                     description=text, default=default, replace=replace)


def add_weights_file(name: str, weights: Path, *, license: str, description: str | None, default: bool = False,
                     replace: bool = False) -> ModelEntry:
    """A checkpoint given without --arch: weights `vidgen train` wrote name their own arch, task and config; any
    other file must be a super-resolution model whose architecture and scale spandrel detects."""
    weights = Path(weights)
    if weights.suffix == ".safetensors" and _written_by_train(weights):
        return add_trained_weights(name, weights, license=license, description=description, default=default,
                                   replace=replace)
    return add_detected_model(name, weights, license=license, description=description, default=default,
                              replace=replace)


def _written_by_train(path: Path) -> bool:
    """Whether a .safetensors file carries `vidgen train`'s metadata (format, task, arch, config)."""
    from safetensors import SafetensorError, safe_open

    from vidgen.registry.run_weights import FORMAT

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format") == FORMAT
    except (OSError, ValueError, RuntimeError, SafetensorError):
        return False  # not readable as .safetensors: the detection says what it is


def add_detected_model(name: str, weights: Path, *, license: str, description: str | None, default: bool = False,
                       replace: bool = False) -> ModelEntry:
    """Register a super-resolution checkpoint of any architecture spandrel knows (arch `spandrel`, task upscale),
    its architecture and scale detected from its tensors. Read safely: a pickle only with
    `torch.load(weights_only=True)`, and only tensors reach spandrel."""
    from vidgen.models import spandrel_sr
    from vidgen.registry.convert import load_tensors, state_dict_of

    weights = Path(weights)
    if not weights.is_file():
        raise UsageError(f"weights file {weights} does not exist")
    probe = ModelEntry(name=name, aliases=(), task="upscale", arch="spandrel", config={}, license=license,
                       description="", default=False, sha256=None, sources=())
    state = state_dict_of(load_tensors(weights), probe)
    try:
        found = spandrel_sr.detect(state)
    except spandrel_sr.SpandrelUnavailable:
        raise UsageError(f"{weights}: no --arch given, and recognising other architectures needs spandrel",
                         hint="pip install 'vidgen[sr]', or give --arch (`vidgen train TASK` lists vidgen's)") from None
    except ValueError as err:
        raise UsageError(f"{weights}: {err}",
                         hint="give --arch for one of vidgen's architectures, or --from for a `vidgen train` run") from None
    text = description or f"{found.name} x{found.scale} ({found.purpose}, detected by spandrel) from {weights.name}"
    return add_model(name, weights, task="upscale", arch="spandrel",
                     config={"architecture": found.architecture, "scale": found.scale}, license=license,
                     description=text, default=default, replace=replace)


def remove_model(name: str) -> ModelEntry:
    """Delete a user model: its overlay entry, its stored weights and its cached weights."""
    from vidgen.registry import cache_file, resolve

    overlay_path = paths.user_registry_path()
    with overlay_lock():
        entry = resolve(name)
        if entry.origin != str(overlay_path):
            raise UsageError(f"{entry.name} ships with vidgen and cannot be removed",
                             hint="only models added with `vidgen models add` can be removed")
        data = _read_overlay()
        if entry.name not in data["models"]:
            raise RegistryError(f"{overlay_path}: entry {entry.name!r} not found in the overlay")
        stored = _stored_file(data["models"].pop(entry.name))
        _write_overlay(_overlay_text(data))
        cache_file(entry).unlink(missing_ok=True)  # a copy an older vidgen made
        if stored is not None:
            stored.unlink(missing_ok=True)
    return entry

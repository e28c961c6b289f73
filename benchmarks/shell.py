"""Run commands as a user would from a shell, echoing each one: the benchmarks drive vidgen through its CLI."""

from __future__ import annotations

import subprocess


def run(*command: str, capture: bool = False) -> str:
    """Run `command` (raising on failure); with `capture`, return its stdout instead of letting it print."""
    print("$", " ".join(command), flush=True)
    result = subprocess.run(list(command), check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return result.stdout or ""


def vidgen(*args: str, capture: bool = False) -> str:
    return run("vidgen", *args, capture=capture)

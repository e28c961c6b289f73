"""One place that turns exceptions into what a shell user sees: one line, a hint, an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("VIDGEN_DEBUG", "").strip() not in ("", "0")


def report(message: str, hint: str | None = None) -> None:
    line = f"error: {message}"
    if hint:
        line += f" (hint: {hint})"
    print(line, file=sys.stderr)


def handle_errors(func: F) -> F:
    """Wrap a command: VidgenError -> one line + exit code; anything else -> one line, exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import click
        import typer

        from vidgen.errors import VidgenError

        try:
            return func(*args, **kwargs)
        except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except VidgenError as err:
            if debug_enabled():
                raise
            report(err.message, err.hint)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            report("interrupted", "nothing was written under the final name; run again with --resume to continue")
            raise typer.Exit(130) from None
        except Exception as err:  # an unexpected failure still gets one line, not a traceback
            if debug_enabled():
                raise
            report(f"{type(err).__name__}: {err}", "run again with VIDGEN_DEBUG=1 for a traceback")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]

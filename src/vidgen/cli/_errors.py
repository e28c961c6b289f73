"""One place that turns exceptions into what a shell user sees: one line, a hint, an exit code."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

NOT_WRITTEN = "nothing was written under the final name"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what shells report for `... | head`


def debug_enabled() -> bool:
    return os.environ.get("VIDGEN_DEBUG", "").strip() not in ("", "0")


def one_line(text: str) -> str:
    """`text` without terminal escape codes, its lines joined: safe to print as one line of a message."""
    from vidgen.errors import strip_ansi

    return " ".join(part.strip() for part in strip_ansi(str(text)).splitlines() if part.strip())


def report(message: str, hint: str | None = None) -> None:
    line = f"error: {one_line(message)}"
    if hint:
        line += f" (hint: {one_line(hint)})"
    print(line, file=sys.stderr)


def describe(err: BaseException) -> tuple[str, str | None, int]:
    """(message, hint, exit code) of a failure, as `handle_errors` reports it."""
    from vidgen.errors import VidgenError

    if isinstance(err, VidgenError):
        return err.message, err.hint, err.exit_code
    return f"{type(err).__name__}: {err}", "run again with VIDGEN_DEBUG=1 for a traceback", 1


def failure_record(err: BaseException, **where: Any) -> dict[str, Any]:
    """The --json record of one failed job (a file of a batch, or the one job of a command): what it was
    (`input`, `output`, ...), `"status": "failed"`, the error and its hint, as on stderr."""
    message, hint, _ = describe(err)
    return {**{key: None if value is None else _plain(value) for key, value in where.items()},
            "status": "failed", "error": one_line(message), "hint": one_line(hint) if hint else None}


def _plain(value: Any) -> Any:
    return [str(item) for item in value] if isinstance(value, (list, tuple)) else str(value)


@contextlib.contextmanager
def json_failure(json_output: bool, **where: Any) -> Iterator[dict[str, Any]]:
    """Around a command's one job: with --json, a failure prints its record on stdout (`failure_record`) and
    then goes on to `handle_errors` (the one line on stderr, the same exit code). Yields the record's fields
    (`where`), for the command to fill in what it learns (the output it planned). Exits pass untouched."""
    try:
        yield where
    except Exception as err:
        import typer

        if json_output and not isinstance(err, (typer.Exit, typer.Abort, BrokenPipeError, click_exception())):
            from vidgen.cli._console import emit_json

            emit_json(failure_record(err, **where))
        raise


def batch_failure(err: BaseException, json_output: bool, **where: Any) -> None:
    """One file of a batch failed: its line on stderr and, with --json, its record; the batch goes on."""
    record = failure_record(err, **where)
    report(record["error"])
    if json_output:
        from vidgen.cli._console import emit_json

        emit_json(record)


def silence_stdout() -> None:
    """After a closed downstream pipe: point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured output)
        pass


def click_exception() -> type[Exception]:
    """The ClickException class of the click that Typer runs on (Typer 0.2x vendors its own copy)."""
    import typer

    return next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


@overload
def handle_errors(func: F) -> F: ...
@overload
def handle_errors(*, interrupted: str = NOT_WRITTEN) -> Callable[[F], F]: ...


def handle_errors(func: F | None = None, *, interrupted: str = NOT_WRITTEN) -> Any:
    """Wrap a command: VidgenError -> one line + its exit code; Ctrl-C -> `interrupted` as the hint, exit 130;
    a closed stdout pipe -> quiet exit 141; anything else -> one line, exit 1 (traceback with VIDGEN_DEBUG=1).

    Use as `@handle_errors`, or `@handle_errors(interrupted=...)` for a command whose Ctrl-C hint differs.
    """
    if func is None:
        return lambda inner: handle_errors(inner, interrupted=interrupted)

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import typer

        from vidgen.errors import VidgenError

        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, click_exception()):
            raise
        except VidgenError as err:
            if debug_enabled():
                raise
            message, hint, code = describe(err)
            report(message, hint)
            raise typer.Exit(code) from None
        except KeyboardInterrupt as err:
            if debug_enabled():
                raise
            # A run on a stream finishes its output on Ctrl-C and says where it went (`hint`).
            report("interrupted", getattr(err, "hint", None) or interrupted)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            silence_stdout()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except Exception as err:  # an unexpected failure still gets one line, not a traceback
            if debug_enabled():
                raise
            message, hint, code = describe(err)
            report(message, hint)
            raise typer.Exit(code) from None

    return wrapper

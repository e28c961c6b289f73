"""The `vidgen` command: wires one module per subcommand. Nothing here imports torch or av."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from vidgen.cli import eval as eval_cmd
from vidgen.cli import fuse as fuse_cmd
from vidgen.cli import generate as generate_cmd
from vidgen.cli import interpolate as interpolate_cmd
from vidgen.cli import models as models_cmd
from vidgen.cli import reconstruct as reconstruct_cmd
from vidgen.cli import train as train_cmd
from vidgen.cli import upscale as upscale_cmd



class OneLineErrors(TyperGroup):
    """Usage errors (a bad option value, a missing argument) as one `error:` line on stderr, exit 2."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from vidgen.cli._errors import EXIT_INTERRUPTED, click_exception, report

        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exception() as err:
            ctx = getattr(err, "ctx", None)
            if type(err).__name__ == "NoArgsIsHelpError":  # a bare `vidgen interpolate`: its help, as before
                err.show()
            else:
                where = f"{ctx.command_path}: " if ctx is not None else ""
                report(where + err.format_message(), f"see `{ctx.command_path} --help`" if ctx is not None else None)
            sys.exit(err.exit_code)
        except typer.Abort:
            report("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


def _print_version(value: bool) -> None:
    if value:
        import vidgen

        typer.echo(f"vidgen {vidgen.__version__}")
        raise typer.Exit()


app = typer.Typer(
    cls=OneLineErrors,
    name="vidgen",
    help="Video frame interpolation, super-resolution, autoencoding, fusion and text-to-video; one trainer, evaluation and a registry of verified models.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every subcommand
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Show the library's log on stderr: -v info, -vv debug (default: warnings only).")] = 0,
) -> None:
    from vidgen.allocator import keep_freed_memory
    from vidgen.cli._console import show_log

    keep_freed_memory()  # frame-sized arrays are reused, not unmapped and faulted in again every frame
    ctx.call_on_close(show_log(verbose))


app.command("interpolate", no_args_is_help=True, epilog=interpolate_cmd.EPILOG)(interpolate_cmd.interpolate)
app.command("upscale", no_args_is_help=True, epilog=upscale_cmd.EPILOG)(upscale_cmd.upscale)
app.command("reconstruct", no_args_is_help=True, epilog=reconstruct_cmd.EPILOG)(reconstruct_cmd.reconstruct)
app.command("fuse", no_args_is_help=True, epilog=fuse_cmd.EPILOG)(fuse_cmd.fuse)
app.command("generate", no_args_is_help=True, epilog=generate_cmd.EPILOG)(generate_cmd.generate)
app.add_typer(models_cmd.app, name="models")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(train_cmd.app, name="train")


def main() -> None:
    app()

"""The `vidgen` command: wires one module per subcommand. Nothing here imports torch or av."""

from __future__ import annotations

import typer

from vidgen.cli import eval as eval_cmd
from vidgen.cli import fuse as fuse_cmd
from vidgen.cli import generate as generate_cmd
from vidgen.cli import interpolate as interpolate_cmd
from vidgen.cli import models as models_cmd
from vidgen.cli import reconstruct as reconstruct_cmd
from vidgen.cli import train as train_cmd

app = typer.Typer(
    name="vidgen",
    help="Video frame interpolation, autoencoding, fusion and text-to-video; one trainer, evaluation and a registry of verified models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("interpolate", no_args_is_help=True)(interpolate_cmd.interpolate)
app.command("reconstruct", no_args_is_help=True)(reconstruct_cmd.reconstruct)
app.command("fuse", no_args_is_help=True)(fuse_cmd.fuse)
app.command("generate", no_args_is_help=True)(generate_cmd.generate)
app.add_typer(models_cmd.app, name="models")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(train_cmd.app, name="train")


def main() -> None:
    app()

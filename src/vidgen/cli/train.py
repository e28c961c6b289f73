"""`vidgen train TASK`: train an in-house architecture on folders of videos (one trainer for every task)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

from vidgen.cli._console import console, emit_json
from vidgen.cli._errors import handle_errors
from vidgen.cli._options import MAX_SEED, JsonOpt, QuietOpt

app = typer.Typer(
    help="Train in-house models on your footage; the run folder holds config, metrics and .safetensors weights.",
    no_args_is_help=True,
)

ArchOpt = Annotated[Optional[str], typer.Option("--arch", help="Architecture to train; omit it to list them.")]
DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Folder of training videos (searched recursively; class subfolders get a stratified 70/15/15 split).")]
ValOpt = Annotated[Optional[Path], typer.Option("--val", help="Folder of held-out validation videos (default: the split's val share).")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder: config.toml, split.json, metrics.jsonl, last/best.safetensors.")]
InitOpt = Annotated[Optional[str], typer.Option("--init", help="Start from a registry model's weights (fine-tuning), e.g. rife.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="A run.toml; command-line options override it.")]
TrainOnlyOpt = Annotated[Optional[list[str]], typer.Option("--train-only", metavar="PREFIX", help="Train only the parameters whose names start with PREFIX (a module, e.g. photometry); the rest stay frozen. Repeatable.")]
TaskOptionOpt = Annotated[Optional[list[str]], typer.Option("--task-option", metavar="KEY=VALUE", help="A task setting (the run.toml's [task_options]), e.g. tokenizer=vqvae.digits; repeatable. VALUE is read as TOML, else as text.")]


def parse_task_options(items: list[str] | None) -> dict[str, Any]:
    """`["keyframes=8", "tokenizer=vqvae.digits"]` -> {"keyframes": 8, "tokenizer": "vqvae.digits"}."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    from vidgen.errors import UsageError

    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"--task-option {item!r}: expected KEY=VALUE", hint="e.g. --task-option keyframes=8")
        try:
            options[key] = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            options[key] = text.strip()
    return options


def _list_archs(task: str) -> None:
    from vidgen.registry.archs import list_archs

    archs = [spec for spec in list_archs(task) if spec.needs_weights and spec.format == "safetensors"]
    con = console()
    con.print(f"architectures for `vidgen train {task} --arch ARCH`:")
    for spec in archs:
        doc = (spec.builder.__doc__ or "").strip().splitlines()
        con.print(f"  {spec.name:<20} {doc[0] if doc else ''}")


def run_training(task: str, arch: str | None, options: dict[str, Any], config_file: Path | None, resume: bool,
                 quiet: bool, json_output: bool, task_options: dict[str, Any] | None = None,
                 overwrite: bool = False) -> None:
    """Shared by every task's subcommand: build the effective config, train, report.

    `task_options` (from --task-option) are merged over the config file's (or the resumed run's) [task_options].
    A new run refuses a non-empty --out unless `overwrite` (see `vidgen.train.run_folder`).
    """
    from vidgen.errors import UsageError

    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other",
                         hint="--resume continues the run in --out; --overwrite replaces it with a new one")
    if arch is None and config_file is None and not resume:
        _list_archs(task)
        return
    from vidgen.train.config import build_config, read_config_file, read_saved_config, resume_config

    cli_options = {"arch": arch, **options}
    if resume:
        out = options.get("out")
        if out is None:
            raise UsageError("--resume needs --out RUN_DIR (the folder of the run to continue)")
        saved_path = Path(out) / "config.toml"
        if not saved_path.is_file():
            raise UsageError(f"nothing to resume: {saved_path} does not exist", hint="start the run without --resume")
        saved = read_saved_config(saved_path)
        if saved["task"] != task:
            raise UsageError(f"{out} is a {saved['task']} run, not {task}",
                             hint=f"vidgen train {saved['task']} --out {out} --resume")
        if task_options:
            cli_options["task_options"] = {**saved["task_options"], **task_options}
        config = resume_config(saved, cli_options)
    else:
        file_options = read_config_file(config_file) if config_file is not None else {}
        if task_options:
            cli_options["task_options"] = {**file_options.get("task_options", {}), **task_options}
        config = build_config(task, file_options, cli_options)
    from vidgen.tasks import train

    try:
        result = train(config, resume=resume, overwrite=overwrite, progress=not quiet and console().is_terminal)
    except KeyboardInterrupt:
        from vidgen.cli._errors import debug_enabled

        if debug_enabled():
            raise
        _interrupted(Path(config.out))  # type: ignore[arg-type]
    summary = {
        "task": task, "arch": config.arch, "run_dir": str(result.run_dir), "steps": result.steps,
        "metric": result.metric, "best_val": result.best, "best_step": result.best_step,
        "baseline_val": result.baseline, "stopped_early": result.stopped_early,
    }
    if json_output:
        emit_json(summary)
    elif not quiet:
        baseline = f" (baseline {result.baseline:.2f})" if result.baseline is not None else ""
        console().print(f"trained {config.arch} for {result.steps} steps: best val {result.metric} {result.best:.2f} "
                        f"at step {result.best_step}{baseline}; weights in {result.run_dir}/best.safetensors")
        console().print(f"use it: vidgen models add NAME --from {result.run_dir}")


def _interrupted(run_dir: Path) -> NoReturn:
    """Ctrl-C: say whether the run folder kept a checkpoint to resume (a run stopped before its first is removed)."""
    from vidgen.cli._errors import report
    from vidgen.train.checkpoint import state_path

    if state_path(run_dir).is_file():
        report("interrupted", f"{run_dir} keeps the last checkpoint; run again with --resume to continue")
    else:
        report("interrupted before the first checkpoint", f"nothing was kept in {run_dir}; start the run again")
    raise typer.Exit(130)


def _task_command(task: str, summary: str) -> None:
    """Register `vidgen train TASK`: every task takes the same options (one TrainConfig)."""

    def command(
        arch: ArchOpt = None,
        data: DataOpt = None,
        val: ValOpt = None,
        out: OutOpt = None,
        init: InitOpt = None,
        config: ConfigOpt = None,
        task_option: TaskOptionOpt = None,
        train_only: TrainOnlyOpt = None,
        steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Optimizer steps (default 1000).")] = None,
        epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Passes over the training windows, instead of --steps.")] = None,
        minutes: Annotated[Optional[float], typer.Option("--minutes", help="Train for this wall time instead of --steps; the learning rate decays over it.")] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Samples per step and process (default 8).")] = None,
        accumulate: Annotated[Optional[int], typer.Option("--accumulate", min=1, help="Micro-batches per optimizer step.")] = None,
        lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate of AdamW (default 3e-4).")] = None,
        warmup: Annotated[Optional[int], typer.Option("--warmup", min=0, help="Linear warmup steps before the cosine decay.")] = None,
        clip_grad: Annotated[Optional[float], typer.Option("--clip-grad", help="Gradient norm clip; 0 = off.")] = None,
        loss: Annotated[Optional[str], typer.Option("--loss", help="Loss terms, e.g. 'charbonnier+0.1*census+0.05*lab'.")] = None,
        crop: Annotated[Optional[int], typer.Option("--crop", min=8, help="Training crop size in pixels (default 256).")] = None,
        val_crop: Annotated[Optional[int], typer.Option("--val-crop", min=8, help="Centre crop of validation windows (default 256).")] = None,
        window: Annotated[Optional[int], typer.Option("--window", min=1, help="Frames per sample (default: the task's; 3 for interpolate).")] = None,
        stride: Annotated[Optional[int], typer.Option("--stride", min=1, help="Frame step inside a sample (larger: more motion).")] = None,
        max_side: Annotated[Optional[int], typer.Option("--max-side", min=16, help="Downscale footage so its long side is at most this.")] = None,
        color_jitter: Annotated[Optional[float], typer.Option("--color-jitter", help="Augment colours: hue shift up to +-this many turns (0-0.5), saturation x[1-it, 1+it].")] = None,
        val_every: Annotated[Optional[int], typer.Option("--val-every", min=1, help="Validate every N steps.")] = None,
        patience: Annotated[Optional[int], typer.Option("--patience", min=0, help="Stop after N validations without improvement (0: never).")] = None,
        ema: Annotated[Optional[float], typer.Option("--ema", help="EMA decay of the weights, e.g. 0.999 (0: off).")] = None,
        amp: Annotated[Optional[str], typer.Option("--amp", help="Mixed precision on CUDA: auto, bf16, fp16, off.")] = None,
        compile_model: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the model.")] = None,
        seed: Annotated[Optional[int], typer.Option("--seed", min=0, max=MAX_SEED, help="Seed for the split, sampling, augmentation and init.")] = None,
        workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="DataLoader worker processes decoding video.")] = None,
        save_every: Annotated[Optional[int], typer.Option("--save-every", min=1, help="Write last.safetensors + state every N steps.")] = None,
        log_every: Annotated[Optional[int], typer.Option("--log-every", min=1, help="Append a metrics.jsonl record every N steps.")] = None,
        val_windows: Annotated[Optional[int], typer.Option("--val-windows", min=1, help="Validation samples (evenly spaced, fixed).")] = None,
        weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", min=0.0, help="AdamW weight decay.")] = None,
        cache: Annotated[Optional[bool], typer.Option("--cache/--no-cache", help="Keep decoded frames in RUN_DIR/cache.")] = None,
        device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out exactly where it stopped.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run in --out (its weights, state, metrics and cache) with a new one; without it a new run refuses a folder that is not empty.")] = False,
        quiet: QuietOpt = False,
        json_output: JsonOpt = False,
    ) -> None:
        options = {
            "data": data, "val": val, "out": out, "init": init, "steps": steps, "epochs": epochs, "minutes": minutes,
            "batch_size": batch_size, "accumulate": accumulate, "lr": lr, "warmup": warmup, "clip_grad": clip_grad,
            "loss": loss, "crop": crop, "val_crop": val_crop, "window": window, "stride": stride, "max_side": max_side,
            "color_jitter": color_jitter, "val_every": val_every,
            "patience": patience, "ema": ema, "amp": amp, "compile": compile_model, "seed": seed, "workers": workers,
            "save_every": save_every, "log_every": log_every, "val_windows": val_windows, "weight_decay": weight_decay,
            "cache": cache, "device": device, "train_only": train_only,
        }
        run_training(task, arch, options, config, resume, quiet, json_output, parse_task_options(task_option),
                     overwrite=overwrite)

    command.__doc__ = summary
    app.command(task)(handle_errors(command))


# One subcommand per task; the help line is what `vidgen train --help` shows.
TASK_SUMMARIES = {
    "interpolate": "Train a frame-interpolation network on frame triplets from your videos.",
    "reconstruct": "Train a video autoencoder / tokenizer (v2v, vqvae) to encode and decode windows of frames.",
    "fuse": "Train a fusion network: N damaged views (made on the fly) of each clip -> the clean clip.",
    "generate": "Train a text-to-video token model on captioned clips (clip.mp4 + clip.txt) with a frozen tokenizer.",
    "upscale": "Train a super-resolution network (vsr: recurrent video SR) on clean footage shrunk on the fly.",
}
for _task, _summary in TASK_SUMMARIES.items():
    _task_command(_task, _summary)

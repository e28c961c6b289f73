"""`vidgen models`: list, inspect, fetch, verify, add and remove registry entries. Never imports torch to list."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vidgen.cli._console import console, emit_json
from vidgen.cli._errors import handle_errors
from vidgen.cli._options import JsonOpt

app = typer.Typer(
    help="List, inspect, download and verify the models in the registry (models.toml + your overlay).",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Registry name or alias, e.g. rife or ifnet.rife-v3.6-hd.")]


def _size_text(size: int | None) -> str:
    if size is None:
        return "-"
    amount = float(size)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def _summary(entry: Any) -> dict[str, Any]:
    from vidgen.registry import cached_size

    size = cached_size(entry)
    return {
        "name": entry.name,
        "aliases": list(entry.aliases),
        "task": entry.task,
        "arch": entry.arch,
        "license": entry.license,
        "default": entry.default,
        "needs_weights": entry.needs_weights,
        # null for weightless entries: there is nothing to cache
        "cached": (size is not None) if entry.needs_weights else None,
        "size": size,
    }


@app.command("list")
@handle_errors
def list_models(
    task: Annotated[Optional[str], typer.Option("--task", help="Only models for this task, e.g. interpolate.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List registered models and whether their weights are cached.

    On a terminal, a table on stderr; piped or redirected, a header and one tab-separated line per model on
    stdout (name, aliases, task, license, default, cached, size), nothing truncated; --json for data.
    """
    from vidgen.registry import list_entries

    rows = [_summary(entry) for entry in list_entries(task)]
    if json_output:
        for row in rows:
            emit_json(row)
        return
    if not rows:
        console().print(f"no models for task {task!r}" if task else "no models registered")
        return
    if _stdout_is_terminal():
        console().print(_table(rows))
    else:  # piped or redirected: full rows a script can grep and cut, never truncated to a width
        for line in _plain_lines(rows):
            typer.echo(line)


_COLUMNS = ("name", "aliases", "task", "license", "default", "cached", "size")


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _cells(row: dict[str, Any]) -> dict[str, str]:
    return {
        "name": row["name"],
        "aliases": ",".join(row["aliases"]),
        "task": row["task"],
        "license": row["license"],
        "default": "yes" if row["default"] else "no",
        "cached": "n/a" if row["cached"] is None else ("yes" if row["cached"] else "no"),
        "size": _size_text(row["size"]),
    }


def _plain_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A header line, then one tab-separated line per row (empty aliases stay an empty field)."""
    return ["\t".join(_COLUMNS)] + ["\t".join(_cells(row)[column] for column in _COLUMNS) for row in rows]


def _table(rows: list[dict[str, Any]]) -> Any:
    from rich import box
    from rich.table import Table

    # Compact, and names never truncated (users copy them into --model). `arch` is the name's prefix.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True, min_width=max(len(row["name"]) for row in rows))
    for column in ("aliases", "task", "license", "default", "cached"):
        table.add_column(column)
    table.add_column("size", justify="right", no_wrap=True)
    for row in rows:
        cells = _cells(row)
        cells["aliases"] = ", ".join(row["aliases"])
        cells["default"] = "*" if row["default"] else ""
        table.add_row(*(cells[column] for column in _COLUMNS))
    return table


@app.command("info")
@handle_errors
def info(name: NameArg, json_output: JsonOpt = False) -> None:
    """Show every field of one entry, its sources and its cache state."""
    from vidgen.registry import cached_path, resolve

    entry = resolve(name)
    data = {**entry.to_dict(), **_summary(entry)}
    data["cache_path"] = str(cached_path(entry)) if entry.needs_weights else None
    if entry.format == "diffusers":  # a folder (registry/snapshots.py): where it is, when it is here
        from vidgen.registry.snapshots import local_snapshot

        found = local_snapshot(entry)
        data["cache_path"] = str(found[1]) if found else None
    if json_output:
        emit_json(data)
        return
    out = console()
    out.print(f"[bold]{entry.name}[/bold]  {entry.description}", highlight=False, soft_wrap=True)
    for key in ("aliases", "task", "arch", "license", "default", "config", "sha256", "origin"):
        value = ", ".join(data[key]) if key == "aliases" else data[key]
        out.print(f"  {key:<9} {value if value not in (None, '', {}) else '-'}", highlight=False, soft_wrap=True)
    if not entry.needs_weights:
        out.print("  weights   none needed", highlight=False, soft_wrap=True)
        return
    state = f"cached, {_size_text(data['size'])}" if data["cached"] else "not cached"
    where = f" at {data['cache_path']}" if data["cache_path"] else ""
    out.print(f"  weights   {state}{where}", highlight=False, soft_wrap=True)
    for number, source in enumerate(entry.sources, 1):
        out.print(f"  source {number}  {source.describe()}", highlight=False, soft_wrap=True)
        pin = f"sha256 {source.sha256}" if source.sha256 else f"revision {source.revision or 'not pinned'}"
        out.print(f"            {pin}", highlight=False, soft_wrap=True)


@app.command("fetch")
@handle_errors(interrupted="the download was not finished; run the same command again")
def fetch(
    name: NameArg,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary line (the cached path is still printed).")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Download, convert and verify an entry's weights into the cache; prints the cached path. On a terminal,
    a bar shows the bytes downloaded and the rate."""
    from vidgen.registry import cached_size, ensure_weights, resolve

    entry = resolve(name)
    if not entry.needs_weights:
        console().print(f"{entry.name} needs no weights")
        if json_output:
            emit_json({"name": entry.name, "path": None, "sha256": None, "size": None})
        return
    path = ensure_weights(entry, progress=not quiet)
    size = cached_size(entry) if entry.format == "diffusers" else path.stat().st_size  # a folder, or one file
    if json_output:
        emit_json({"name": entry.name, "path": str(path), "sha256": entry.sha256, "size": size})
    else:
        if not quiet:
            done = (f"fetched {_size_text(size)} (`vidgen models verify` re-hashes its files)"
                    if entry.format == "diffusers" else f"verified sha256 {entry.sha256}")
            console().print(f"{entry.name}: {done}", highlight=False, soft_wrap=True)
        typer.echo(str(path))


@app.command("verify")
@handle_errors
def verify(
    name: Annotated[Optional[str], typer.Argument(help="One model; default: every cached model.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Re-hash the weights on disk (cached, or installed with vidgen). Exit 1 on a mismatch, or when the NAME
    given is not on disk."""
    from vidgen.registry import cache_file, list_entries, resolve, verify_cached

    if name is not None:
        entries = [resolve(name)]
    else:
        entries = [entry for entry in list_entries() if entry.needs_weights]
    results = [verify_cached(entry) for entry in entries]
    if name is None:
        results = [result for result in results if result.status != "missing"]
    for result in results:
        if json_output:
            emit_json(result.to_dict())
        elif result.path is None:
            console().print(f"{result.entry.name}: no weights to verify", highlight=False, soft_wrap=True)
        elif result.status == "ok":
            note = f"; {result.note}" if result.note else ""
            console().print(f"{result.entry.name}: ok ({result.path}{note})", highlight=False, soft_wrap=True)
        elif result.status == "missing":
            console().print(
                f"{result.entry.name}: not cached (run `vidgen models fetch {name}`)", highlight=False, soft_wrap=True
            )
        else:
            advice = (f"delete it and run `vidgen models fetch {result.entry.name}`"
                      if result.path == cache_file(result.entry) else
                      "it is loaded where it lies: reinstall vidgen, or `vidgen models add --replace` a model of yours")
            console().print(
                f"[red]{result.entry.name}: MISMATCH[/red] {result.path}\n  expected {result.expected}\n"
                f"  actual   {result.actual}\n  {advice}",
                highlight=False,
                soft_wrap=True,
            )
    if not results and not json_output:
        console().print("no cached weights to verify")
    if any(not result.ok for result in results):
        raise typer.Exit(1)


@app.command("add")
@handle_errors
def add(
    name: Annotated[str, typer.Argument(help="Name for the model, e.g. anime (becomes ARCH.anime, alias anime).")],
    from_run: Annotated[Optional[Path], typer.Option("--from", help="A `vidgen train` run folder (uses its best weights).")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="A checkpoint file (.safetensors, or a weights-only .pt/.pth).")] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Architecture of --weights (read from the file when `vidgen train` wrote it; detected by spandrel for other super-resolution checkpoints).")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="Task of --weights (default: the arch's).")] = None,
    config: Annotated[Optional[str], typer.Option("--config", help="Builder config of --weights as JSON, e.g. '{\"channels\": 90}'.")] = None,
    license: Annotated[str, typer.Option("--license", help="Licence of the weights, recorded in the registry.")] = "unspecified",
    description: Annotated[Optional[str], typer.Option("--description", help="One line shown by `vidgen models info`.")] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default model of its task.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a model of yours with the same name.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Register your own weights (a training run or a checkpoint file) so every command can use them."""
    import json

    from vidgen.errors import UsageError
    from vidgen.registry import user

    if (from_run is None) == (weights is None):
        raise UsageError("give exactly one of --from RUN_DIR and --weights FILE")
    if from_run is not None:
        if arch or task or config:
            raise UsageError("--arch/--task/--config come from the run folder; drop them with --from")
        entry = user.add_from_run(name, from_run, license=license, description=description, default=default,
                                  replace=replace)
    elif arch is None and task is None and config is None:
        # a weights file written by `vidgen train` names its own arch, task and config; any other is detected
        # as a super-resolution model by spandrel (arch and scale)
        entry = user.add_weights_file(name, weights, license=license, description=description,  # type: ignore[arg-type]
                                      default=default, replace=replace)
    else:
        if arch is None:
            raise UsageError("--task/--config need --arch", hint="`vidgen train TASK` lists the architectures")
        from vidgen.registry.archs import get_arch

        try:
            builder_config = json.loads(config) if config else {}
        except json.JSONDecodeError as err:
            raise UsageError(f"--config is not JSON: {err}") from None
        if not isinstance(builder_config, dict):
            raise UsageError("--config must be a JSON object")
        spec = get_arch(arch)
        entry = user.add_model(name, weights, task=task or spec.task, arch=arch,  # type: ignore[arg-type]
                               config={**spec.defaults, **builder_config}, license=license,
                               description=description or f"{arch} weights from {weights.name}",
                               default=default, replace=replace)
    if json_output:
        emit_json(entry.to_dict())
    else:
        short = entry.aliases[0] if entry.aliases else entry.name
        console().print(f"added {entry.name} (sha256 {entry.sha256[:12]}...); use it: --model {short}",
                        highlight=False, soft_wrap=True)


@app.command("remove")
@handle_errors
def remove(name: NameArg, json_output: JsonOpt = False) -> None:
    """Delete one of your models: its registry entry, stored weights and cache."""
    from vidgen.registry import user

    entry = user.remove_model(name)
    if json_output:
        emit_json({"name": entry.name, "removed": True})
    else:
        console().print(f"removed {entry.name}", highlight=False, soft_wrap=True)

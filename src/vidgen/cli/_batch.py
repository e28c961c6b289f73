"""The batch loop of every command that maps files to files (`interpolate`, `upscale`): plan the jobs, skip
existing outputs, run each under its progress bar, report failures per file and go on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from vidgen.cli._console import console, emit_json, progress
from vidgen.cli._errors import batch_failure, report
from vidgen.errors import UsageError


def run_jobs(inputs: list[str], output: str | None, *, shard: str | None, skip_existing: bool, quiet: bool,
             json_output: bool, record: dict[str, Any], default_output: Callable[[Path], Path],
             run: Callable[[Path, Path | None, Any], Any], show: Callable[[Any], None]) -> None:
    """`run(input, output, progress)` for each job of the batch plan (`vidgen.video.batch.plan_jobs`), then
    `show(result)`. One input: its failure propagates (the CLI's one line, and its JSON record through
    `record`); several: each failure is reported and the batch goes on, exit 1 at the end if any failed."""
    from vidgen.video.batch import parse_shard, plan_jobs

    output_path = Path(output) if output is not None else None
    jobs, several = plan_jobs([Path(item) for item in inputs], output_path, parse_shard(shard) if shard else None,
                              default_output=default_output)
    if several and output_path is not None and output_path.suffix and not output_path.exists():
        raise UsageError(f"--output {output}: with several inputs, -o must be a folder", hint="drop the file extension")
    failures = []
    for job in jobs:
        if skip_existing and job.output is not None and job.output.exists():
            if json_output:
                emit_json({"input": str(job.input), "output": str(job.output), "status": "skipped"})
            elif not quiet:
                console().print(f"{job.output}: exists, skipped")
            continue
        record.update(input=job.input, output=job.output)
        try:
            with progress(job.input.name, quiet) as update:
                result = run(job.input, job.output, update)
        except Exception as err:
            if not several:
                raise
            failures.append(str(job.input))
            batch_failure(err, json_output, input=job.input, output=job.output)
            continue
        show(result)
    if several and not quiet and not json_output:
        console().print(f"{len(jobs) - len(failures)} of {len(jobs)} file(s) done")
    if failures:
        report(f"{len(failures)} of {len(jobs)} file(s) failed: {', '.join(failures)}")
        raise typer.Exit(1)

"""One package per task: what a task owns (its pipeline, engines or model wrapper, evaluation and training
task), built on the shared layers below (video, runtime, registry, metrics, train, models).

`training_task(name, options)` gives a task's `TrainTask` (its own settings from the run config's
[task_options]); `train(config)` trains `config.task`'s model with it (`vidgen train`).
"""

from __future__ import annotations

import importlib
from typing import Any

from vidgen.errors import UsageError

# Task name -> "module:class" of its training task; imported on use.
TRAINING_TASKS: dict[str, str] = {
    "interpolate": "vidgen.tasks.interpolate.train_task:InterpolateTask",
    "reconstruct": "vidgen.tasks.reconstruct.train_task:ReconstructTask",
    "fuse": "vidgen.tasks.fuse.train_task:FuseTask",
    "generate": "vidgen.tasks.generate.train_task:GenerateTask",
    "upscale": "vidgen.tasks.upscale.train_task:UpscaleTask",
}


def training_task(name: str, options: dict[str, Any] | None = None) -> Any:
    """The `vidgen.train.tasks.TrainTask` of task `name`; `options` are its own settings ([task_options])."""
    if name not in TRAINING_TASKS:
        raise UsageError(f"no trainer for task {name!r}", hint=f"tasks: {', '.join(sorted(TRAINING_TASKS))}")
    module, cls = TRAINING_TASKS[name].split(":")
    task_class = getattr(importlib.import_module(module), cls)
    try:
        return task_class(**(options or {}))
    except TypeError as err:
        raise UsageError(f"bad [task_options] for task {name!r}: {err}") from None


def train(config: Any, **options: Any) -> Any:
    """Train `config` (a `vidgen.train.config.TrainConfig`) with its task's training task; `options` as
    `vidgen.train.trainer.train` (resume, overwrite, progress, should_stop). Returns its `TrainResult`."""
    from vidgen.train.trainer import train as run

    return run(config, training_task(config.task, config.task_options), **options)

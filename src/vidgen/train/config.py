"""The effective configuration of a training run: defaults < `--config run.toml` < command-line options.

One flat dataclass serves every task; the model's own keyword config is the `[model]` table. The
effective config is written to RUN_DIR/config.toml, and `--resume` reads it back from there.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidgen.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

AMP_MODES = ("auto", "off", "bf16", "fp16")
# Options that may differ on --resume (where and how long it runs, not what it computes).
RESUMABLE_OVERRIDES = frozenset({"steps", "epochs", "minutes", "device", "workers", "out"})
LENGTHS = ("steps", "epochs", "minutes")  # exclusive ways to say how long a run trains


@dataclass
class TrainConfig:
    task: str = "interpolate"
    arch: str | None = None
    data: str | None = None
    val: str | None = None
    out: str | None = None
    init: str | None = None
    model: dict[str, Any] = field(default_factory=dict)  # the arch's builder keywords
    train_only: list[str] = field(default_factory=list)  # parameter name prefixes to train (the rest frozen); [] = all
    task_options: dict[str, Any] = field(default_factory=dict)  # the task's own settings ([task_options] table)
    window: int | None = None  # frames per sample (default: the task's)
    steps: int | None = None
    epochs: int | None = None
    minutes: float | None = None  # a wall-time budget: the LR schedule follows elapsed time
    batch_size: int = 8
    accumulate: int = 1
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: int = 100
    clip_grad: float = 1.0
    loss: str = "charbonnier+0.1*census"
    crop: int = 256
    stride: int = 1
    max_side: int | None = None
    color_jitter: float = 0.0  # training augmentation: hue shift up to +-this many turns, saturation x[1-it, 1+it]
    val_crop: int | None = 256
    val_every: int = 200
    val_windows: int = 64
    patience: int = 0  # validations without improvement before stopping; 0 = never stop early
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.999); 0 = off
    amp: str = "auto"
    compile: bool = False
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    workers: int = 0
    save_every: int = 200
    log_every: int = 10
    cache: bool = True  # decoded-frame cache under RUN_DIR/cache

    def validate(self) -> None:
        if self.arch is None:
            raise UsageError("no architecture chosen", hint=f"pass --arch; `vidgen train {self.task}` lists them")
        if self.data is None:
            raise UsageError("no training data", hint="pass --data DIR (a folder of videos, searched recursively)")
        if self.out is None:
            raise UsageError("no run folder", hint="pass --out RUN_DIR")
        given = [name for name in LENGTHS if getattr(self, name) is not None]
        if not given:
            self.steps = 1000
        elif len(given) > 1:
            raise UsageError(f"--{' and --'.join(given)} are exclusive", hint="give one of --steps, --epochs, --minutes")
        if self.minutes is not None and self.minutes <= 0:
            raise UsageError(f"--minutes must be positive, got {self.minutes}")
        if self.amp not in AMP_MODES:
            raise UsageError(f"--amp {self.amp!r}: choose one of {', '.join(AMP_MODES)}")
        for name in ("batch_size", "accumulate", "crop", "val_every", "save_every", "log_every", "stride"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.window is not None and self.window < 1:
            raise UsageError("--window must be at least 1")
        if not isinstance(self.train_only, list) or not all(isinstance(p, str) and p for p in self.train_only):
            raise UsageError("--train-only takes parameter name prefixes, e.g. photometry")
        if not 0.0 <= self.color_jitter <= 0.5:
            raise UsageError(f"--color-jitter must be in [0, 0.5] (a hue shift in turns), got {self.color_jitter}")
        if not 0.0 <= self.ema < 1.0:
            raise UsageError("--ema is a decay in [0, 1), e.g. 0.999")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def read_config_file(path: Path) -> dict[str, Any]:
    """A run.toml as a dict of known options (`-` in keys accepted for `_`); unknown keys are an error."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path}: not valid TOML: {err}") from None
    known = _fields()
    options = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UsageError(f"{path}: unknown option(s) {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}")
    return options


def build_config(task: str, file_options: dict[str, Any], cli_options: dict[str, Any]) -> TrainConfig:
    """Defaults, then the config file, then every command-line option that was given (not None)."""
    merged: dict[str, Any] = {"task": task, **file_options}
    merged.update({key: value for key, value in cli_options.items() if value is not None})
    if merged.get("task", task) != task:
        raise UsageError(f"the config is for task {merged['task']!r}, not {task!r}")
    merged["task"] = task
    for key in ("data", "val", "out"):
        if merged.get(key) is not None:
            merged[key] = str(merged[key])
    try:
        return TrainConfig(**merged)
    except TypeError as err:
        raise UsageError(f"bad training option: {err}") from None


def resume_config(saved: dict[str, Any], cli_options: dict[str, Any]) -> TrainConfig:
    """The saved run's config, with only the options that may change on resume taken from the command line."""
    given = {key: _normalise(value) for key, value in cli_options.items() if value is not None}
    changed = sorted(
        key for key, value in given.items()
        if key not in RESUMABLE_OVERRIDES and key in saved and _normalise(saved[key]) != _normalise(value)
    )
    if changed:
        raise UsageError(
            f"--resume continues the saved run; these options differ from it: {', '.join(changed)}",
            hint="drop them (only --steps/--epochs/--minutes, --device and --workers may change), or start a new --out",
        )
    merged = {**saved, **{key: value for key, value in given.items() if key in RESUMABLE_OVERRIDES}}
    for length in LENGTHS:
        if length in given:  # a new length replaces the saved one
            merged.update({other: None for other in LENGTHS if other != length})
    return TrainConfig(**{key: value for key, value in merged.items() if key in _fields()})


def _normalise(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def write_config(config: TrainConfig, path: Path) -> None:
    from vidgen import tomlw
    from vidgen.files import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(
            "# The effective configuration of this run (defaults < --config < command line).\n"
            + tomlw.dumps(config.to_dict()),
            encoding="utf-8",
        )


def read_saved_config(path: Path) -> dict[str, Any]:
    """A run folder's config.toml as written by `write_config`; anything else raises `RunFileError` naming it."""
    from vidgen.errors import short_reason
    from vidgen.train.checkpoint import damaged

    what = "a vidgen run configuration"
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise damaged(path, what, err.strerror or short_reason(err)) from None
    except UnicodeDecodeError:
        raise damaged(path, what, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise damaged(path, what, f"not valid TOML: {short_reason(err)}") from None
    data.setdefault("model", {})
    data.setdefault("task_options", {})
    for key in ("task", "arch"):
        if not isinstance(data.get(key), str):
            raise damaged(path, what, f"no {key} in it")
    for name, spec in _fields().items():
        if name in data and not _fits(data[name], spec):
            raise damaged(path, what, f"{name} = {data[name]!r} is not a {_kind(spec)}")
    return data


def _example(spec: dataclasses.Field[Any]) -> Any:
    """A value of the field's type: its default, or for `X | None` fields an X."""
    default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
    if default is None:
        declared = str(spec.type).split("|")[0].strip()
        return {"int": 0, "float": 0.0, "str": ""}.get(declared)
    return default


def _kind(spec: dataclasses.Field[Any]) -> str:
    default = _example(spec)
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int):
        return "whole number"
    if isinstance(default, float):
        return "number"
    return {str: "string", list: "list", dict: "table"}.get(type(default), "value")


def _fits(value: Any, spec: dataclasses.Field[Any]) -> bool:
    """Whether a saved value has the field's type (that of its default, or X for `X | None`)."""
    default = _example(spec)
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))

"""Run-folder checkpoints: weights as `.safetensors` (what `vidgen models add` ships), resume state beside them.

RUN_DIR/
  config.toml            effective configuration
  split.json             which videos trained / validated / were held out
  metrics.jsonl          one JSON object per logged step and per validation
  last.safetensors       latest weights (EMA weights when --ema is on)
  last.state.pt          optimizer, scheduler, scaler, raw weights, RNG states, counters: for --resume
  best.safetensors       weights with the best validation metric so far
  tensorboard/           TensorBoard event files (with the optional tensorboard extra)
  cache/                 decoded frames / tokens, keyed by their source, reused by --resume and reruns
The weights' metadata names the task, arch and builder config, so a run folder alone rebuilds the model.
The state file is a weights-only pickle (tensors, numbers, strings): `torch.load(weights_only=True)`.
A file here that cannot be read back raises `RunFileError`: one line naming it, never a library's dump.
"""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidgen.errors import RunFileError, UsageError, short_reason
from vidgen.files import atomic_output
from vidgen.registry.run_weights import FORMAT, read_weights_metadata, save_weights, weights_path

# Everything a run writes in its folder (what --overwrite may replace).
__all__ = ["FORMAT", "RUN_ENTRIES", "check_run_weights", "damaged", "load_state", "read_weights_metadata",
           "restore_rng_state", "rng_state", "save_state", "save_weights", "state_path", "weights_path"]
RUN_ENTRIES = frozenset({"config.toml", "split.json", "metrics.jsonl", "last.safetensors", "best.safetensors",
                         "last.state.pt", "tensorboard", "cache"})
STATE_KEYS = ("model", "optimizer", "scheduler", "scaler", "run", "rng")  # and "ema" (None without --ema)
REPAIR_HINT = "start a new run with --overwrite, or restore the file"


def damaged(path: Path, what: str, reason: str) -> RunFileError:
    """`<path>: damaged or not <what> (<reason>)`, with the hint to start over or restore it."""
    return RunFileError(f"{path}: damaged or not {what} ({reason})", hint=REPAIR_HINT)


def state_path(run_dir: Path, tag: str = "last") -> Path:
    return Path(run_dir) / f"{tag}.state.pt"


def rng_state() -> dict[str, Any]:
    """Every RNG the trainer draws from, in a form `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        # MT19937 keys are uint32, which torch < 2.6 cannot save: kept as int64, exactly
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict[str, Any]:
    """The saved training state, checked to hold every part the trainer restores.

    Raises `UsageError` when the file is missing and `RunFileError` for anything that is not a whole
    vidgen training state (truncated, not a torch file, a pickle of other objects, parts missing).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"nothing to resume: {path} does not exist", hint="start the run again with --overwrite")
    what = "a vidgen training state"
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on its way to failing
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = "weights only load failed" in str(err).lower()
        raise damaged(path, what, "it holds Python objects, which vidgen never unpickles" if refused
                      else short_reason(err)) from None
    except EOFError:
        raise damaged(path, what, "empty or cut short") from None
    except OSError as err:
        raise damaged(path, what, err.strerror or short_reason(err)) from None
    except Exception as err:  # torch.load raises whatever its zip and pickle readers meet
        text = str(err)
        reason = ("cut short, or not a file torch.save wrote" if "zip archive" in text or "central directory" in text
                  else "not a file torch.save wrote" if isinstance(err, (KeyError, IndexError, ValueError))
                  else short_reason(err))
        raise damaged(path, what, reason) from None
    if not isinstance(state, dict):
        raise damaged(path, what, f"it holds a {type(state).__name__}, not the trainer's dict")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise damaged(path, what, f"no {', '.join(missing)} in it")
    return state


def check_run_weights(path: Path, task: str, arch: str) -> None:
    """Raise `RunFileError` unless `path` is a whole weights file of this run's task and arch."""
    from safetensors import SafetensorError, safe_open

    what = "weights vidgen train wrote"
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except OSError as err:
        raise damaged(path, what, err.strerror or short_reason(err)) from None
    except (ValueError, RuntimeError, SafetensorError) as err:
        raise damaged(path, what, short_reason(err)) from None
    if raw.get("format") != FORMAT:
        raise damaged(path, what, "no vidgen run metadata")
    if (raw.get("task"), raw.get("arch")) != (task, arch):
        raise damaged(path, what, f"they are {raw.get('task')} {raw.get('arch')}, this run is {task} {arch}")

"""Run-folder checkpoints: weights as `.safetensors` (what `vidgen models add` ships), resume state beside them.

RUN_DIR/
  config.toml            effective configuration
  split.json             which videos trained / validated / were held out
  metrics.jsonl          one JSON object per logged step and per validation
  last.safetensors       latest weights (EMA weights when --ema is on)
  last.state.pt          optimizer, scheduler, scaler, raw weights, RNG states, counters: for --resume
  best.safetensors       weights with the best validation metric so far
The weights' metadata names the task, arch and builder config, so a run folder alone rebuilds the model.
The state file is a weights-only pickle (tensors, numbers, strings): `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidgen._atomic import atomic_output
from vidgen.errors import UsageError

FORMAT = "vidgen-run-weights/1"


def weights_path(run_dir: Path, tag: str) -> Path:
    return Path(run_dir) / f"{tag}.safetensors"


def state_path(run_dir: Path, tag: str = "last") -> Path:
    return Path(run_dir) / f"{tag}.state.pt"


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], *, task: str, arch: str,
                 config: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Write weights deterministically (same tensors and metadata, same bytes), atomically."""
    from vidgen.registry.convert import write_safetensors

    metadata = {
        "format": FORMAT,
        "task": task,
        "arch": arch,
        "config": json.dumps(config, sort_keys=True),
        **{key: json.dumps(value) for key, value in (extra or {}).items()},
    }
    tensors = {name: tensor.detach().to("cpu", torch.float32 if tensor.is_floating_point() else None)
               for name, tensor in state_dict.items()}
    with atomic_output(path) as tmp:
        write_safetensors(tmp, tensors, metadata)


def read_weights_metadata(path: Path) -> dict[str, Any]:
    """task, arch and config (decoded) plus any extra fields of a run's weights file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise UsageError(f"{path}: not a readable .safetensors file ({err})") from None
    if raw.get("format") != FORMAT:
        raise UsageError(
            f"{path} was not written by `vidgen train` (no task/arch metadata)",
            hint="use `vidgen models add NAME --weights FILE --arch ARCH --task TASK`",
        )
    decoded: dict[str, Any] = {key: value for key, value in raw.items() if key in ("format", "task", "arch")}
    for key, value in raw.items():
        if key not in decoded:
            decoded[key] = json.loads(value)
    return decoded


def rng_state() -> dict[str, Any]:
    """Every RNG the trainer draws from, in a form `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.copy()), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise UsageError(f"nothing to resume: {path} does not exist", hint="start the run without --resume")
    return torch.load(path, map_location="cpu", weights_only=True)

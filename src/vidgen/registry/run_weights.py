"""The weights file a `vidgen train` run writes (`RUN_DIR/last.safetensors`, `best.safetensors`): a canonical
.safetensors whose metadata names its format (`vidgen-run-weights/1`), task, arch and builder config (JSON),
plus any extra fields (JSON), so the file alone rebuilds its model and `vidgen models add` can register it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from vidgen.errors import UsageError, short_reason
from vidgen.files import atomic_output
from vidgen.registry.convert import write_safetensors

FORMAT = "vidgen-run-weights/1"


def weights_path(run_dir: Path, tag: str) -> Path:
    return Path(run_dir) / f"{tag}.safetensors"



def save_weights(path: Path, state_dict: dict[str, torch.Tensor], *, task: str, arch: str,
                 config: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Write weights deterministically (same tensors and metadata, same bytes), atomically."""
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
        raise UsageError(f"{path}: not a readable .safetensors file ({short_reason(err)})") from None
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

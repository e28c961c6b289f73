"""Upstream checkpoint -> canonical `.safetensors`, byte-for-byte reproducible so one sha256 can pin it.

`safetensors.torch.save` is not reproducible across processes: it writes `__metadata__` in Rust
HashMap order, which is randomised per process, so the same tensors and metadata hash differently
from run to run. We therefore write the (simple, documented) format ourselves: header JSON with
sorted keys and no whitespace, tensors in name order, header padded to 8 bytes with spaces. The
result is also independent of the installed safetensors version; `safetensors` still reads it.

Pickles are only ever opened with `torch.load(weights_only=True)`, which refuses arbitrary objects; every
file that cannot be read is a RegistryError naming it (see `load_tensors`).
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vidgen.errors import RegistryError, short_reason
from vidgen.registry.entries import ModelEntry

_SAFETENSORS_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
# Nested layouts that training scripts commonly wrap a state dict in.
_WRAPPER_KEYS = ("state_dict", "model", "params", "params_ema", "module")


def canonical_metadata(entry: ModelEntry) -> dict[str, str]:
    """Metadata stored in the canonical file; depends only on the entry, never on which mirror served it.

    `source` is the entry's preferred (first) source, so a fallback mirror yields identical bytes.
    """
    primary = entry.sources[0]
    return {
        "format": "pt",
        "arch": entry.arch,
        "entry": entry.name,
        "license": entry.license,
        "source": primary.describe(),
        "source_sha256": primary.sha256,
    }


def convert_to_canonical(
    entry: ModelEntry,
    artefact: Path,
    artefact_sha256: str,
    target: Path,
    companions: Mapping[str, Path] | None = None,
) -> None:
    """Write `entry`'s canonical `.safetensors` to `target` from a verified upstream artefact.

    `companions` are the source's verified companion files; an arch that declares companions gets
    their bytes as its converter's second argument. A `.bin` whose source pins a `.param` companion is an
    ncnn export, converted by `vidgen.registry.ncnn`.
    """
    if artefact_sha256 == entry.sha256:
        shutil.copyfile(artefact, target)  # the source already serves the canonical file: use it as-is
        return
    graph = ncnn_graph(companions or {})
    if graph is not None:  # an ncnn export: the .bin's weights, laid out by its .param graph
        from vidgen.registry.ncnn import convert_export

        write_safetensors(target, convert_export(entry.arch, dict(entry.config), graph, artefact),
                          canonical_metadata(entry))
        return
    state = state_dict_of(load_tensors(artefact), entry)
    from vidgen.registry.archs import get_arch

    spec = get_arch(entry.arch)
    if spec.companions:
        assert spec.convert_state_dict is not None  # ArchSpec enforces it
        state = spec.convert_state_dict(state, _read_companions(entry, spec.companions, companions or {}))
    elif spec.convert_state_dict is not None:
        state = spec.convert_state_dict(state)
    write_safetensors(target, state, canonical_metadata(entry))


def ncnn_graph(companions: Mapping[str, Path]) -> Path | None:
    """The `.param` companion of an ncnn `.bin` (see `vidgen.registry.ncnn`), or None for other weights."""
    graphs = [Path(path) for name, path in companions.items() if name.endswith(".param")]
    return graphs[0] if len(graphs) == 1 else None


def _read_companions(entry: ModelEntry, needed: tuple[str, ...], available: Mapping[str, Path]) -> dict[str, bytes]:
    missing = [name for name in needed if name not in available]
    if missing:
        pins = ", ".join(f'"{name}" = "<sha256>"' for name in missing)
        raise RegistryError(
            f"{entry.name}: arch {entry.arch!r} needs {', '.join(missing)} from beside the weights, "
            "and the source does not pin it",
            hint=f"add `companions = {{ {pins} }}` to the entry's source",
        )
    return {name: Path(available[name]).read_bytes() for name in needed}


def write_safetensors(path: Path, tensors: Mapping[str, Any], metadata: Mapping[str, str]) -> None:
    """Serialize torch tensors in the safetensors format, deterministically (see the module docstring)."""
    if sys.byteorder != "little":  # safetensors is little-endian; we write raw native bytes
        raise RuntimeError("writing .safetensors needs a little-endian machine")
    names = sorted(tensors)
    header: dict[str, Any] = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs = []
    offset = 0
    for name in names:
        tensor = tensors[name].detach().cpu().contiguous()
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in _SAFETENSORS_DTYPES:
            raise RegistryError(f"tensor {name!r} has dtype {dtype}, which .safetensors cannot hold")
        blob = tensor.reshape(-1).view(_bytes_view_dtype()).numpy().tobytes()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned, as safetensors itself writes
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)


def _bytes_view_dtype() -> Any:
    import torch

    return torch.uint8


def load_tensors(artefact: Path) -> Any:
    """A .safetensors file (by its name or header) via safetensors, anything else as a weights-only pickle.

    Raises RegistryError naming the file: a damaged .safetensors, a pickle that holds more than tensors
    (code, optimiser or other Python objects, which vidgen refuses to unpickle), or neither format.
    """
    artefact = Path(artefact)
    if artefact.suffix == ".safetensors" or _looks_like_safetensors(artefact):
        return load_safetensors(artefact)
    import torch

    try:
        return torch.load(str(artefact), map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have no common base; all mean "not a plain checkpoint"
        if _is_refused_pickle(err):
            raise RegistryError(
                f"{artefact}: not a plain weights file (a pickle holding code or objects other than tensors); "
                "vidgen loads only tensors",
                hint=_CONVERT_HINT,
            ) from None
        raise RegistryError(
            f"{artefact}: not a readable weights file (neither .safetensors nor a PyTorch checkpoint; "
            "it may be truncated or damaged)",
            hint="check that the download or copy finished, or export the weights again",
        ) from None


_CONVERT_HINT = (
    "if you trust where it came from, save its tensors as .safetensors in a Python session "
    "and use that: safetensors.torch.save_file(torch.load(FILE, weights_only=False)['state_dict'], "
    "'weights.safetensors') (pick the key that holds the model's tensors)"
)


def _is_refused_pickle(err: BaseException) -> bool:
    """torch.load(weights_only=True) refusing a global (a class or function) the pickle names."""
    import pickle

    return isinstance(err, pickle.UnpicklingError) and "weights only load failed" in str(err).lower()


def load_safetensors(path: Path) -> dict[str, Any]:
    """All tensors of a .safetensors file on the CPU; a damaged file raises RegistryError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise RegistryError(
            f"{path}: not a valid .safetensors file ({short_reason(err)})",
            hint="it is truncated or damaged; download, copy or export it again",
        ) from None


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < length <= path.stat().st_size - 8


def state_dict_of(loaded: Any, entry: ModelEntry) -> dict[str, Any]:
    state = loaded
    while isinstance(state, Mapping) and not _all_tensors(state):
        inner = next((state[key] for key in _WRAPPER_KEYS if isinstance(state.get(key), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not _all_tensors(state) or not state:
        raise RegistryError(
            f"{entry.name}: the upstream checkpoint is not a state dict of tensors",
            hint="check the source's `member`, or add a `convert_state_dict` to the architecture",
        )
    return {str(key): value for key, value in state.items()}


def _all_tensors(mapping: Mapping[str, Any]) -> bool:
    import torch

    return all(isinstance(value, torch.Tensor) for value in mapping.values())

"""The latents file (`vidgen reconstruct --save-latents`): writing it chunk by chunk, and reading its metadata.

The format, `LATENTS_FORMAT`, is specified in docs/formats.md ("Latents file (vidgen-latents/1)").
`_LatentsWriter` streams each chunk's tensor to a temp data file beside the target and, on `close`,
writes the .safetensors header and the data to the target atomically; an aborted write leaves nothing
behind. `read_latents_metadata` checks a file against the format and returns its metadata decoded
(numbers as int, `fps` as a Fraction, JSON fields parsed, `colour` as a `ColourSpec`); anything else is a
one-line typed error.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.files import atomic_output, temp_path_beside
from vidgen.tasks.reconstruct.reconstructor import Reconstructor, _round_up
from vidgen.video.colour import ColourSpec
from vidgen.video.reader import VideoInfo

LATENTS_FORMAT = "vidgen-latents/1"

_ST_DTYPES = {"float32": "F32", "int16": "I16", "int32": "I32", "int64": "I64"}


def _token_dtype(codebook_size: int | None) -> Any:
    """The dtype tokens are stored in: int16 when every id fits (codebook of at most 32768), else int32."""
    import torch

    return torch.int16 if codebook_size is not None and codebook_size <= 32768 else torch.int32


class _LatentsWriter:
    """Streams tensors to a temp data file; `close` writes the .safetensors header + data atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._data_path = temp_path_beside(self.path, ".part")
        self._data = open(self._data_path, "wb")  # noqa: SIM115 - closed in close/abort
        self._header: dict[str, Any] = {}
        self._offset = 0
        self.count = 0

    def add(self, tensor: Any) -> None:
        array = tensor.contiguous().numpy()
        dtype = str(tensor.dtype).removeprefix("torch.")
        blob = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        name = f"chunk.{self.count:06d}"
        self._header[name] = {"dtype": _ST_DTYPES[dtype], "shape": list(tensor.shape),
                              "data_offsets": [self._offset, self._offset + len(blob)]}
        self._data.write(blob)
        self._offset += len(blob)
        self.count += 1

    def close(self, metadata: dict[str, str]) -> None:
        try:
            self._data.close()
            header = {"__metadata__": metadata, **self._header}
            text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
            text += b" " * (-len(text) % 8)
            with atomic_output(self.path) as tmp, open(tmp, "wb") as out, open(self._data_path, "rb") as data:
                out.write(struct.pack("<Q", len(text)))
                out.write(text)
                shutil.copyfileobj(data, out, 1 << 20)
        finally:
            self.abort()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._data.close()
        with contextlib.suppress(FileNotFoundError):
            self._data_path.unlink()


def _metadata(rec: Reconstructor, info: VideoInfo, frames: int, chunks: list[list[int]], pix_fmt: str) -> dict[str, str]:
    """The file's string metadata for `frames` frames of `info` coded by `rec` in `chunks` ([first, count])."""
    sm = rec.spatial_multiple
    padding = [0, _round_up(info.height, sm) - info.height, 0, _round_up(info.width, sm) - info.width]
    rate = info.frame_rate
    return {
        "format": LATENTS_FORMAT, "model": rec.entry.name, "model_sha256": rec.entry.sha256 or "",
        "arch": rec.entry.arch, "config": json.dumps(dict(rec.entry.config), sort_keys=True),
        "fps": f"{rate.numerator}/{rate.denominator}", "frames": str(frames), "height": str(info.height),
        "width": str(info.width), "padding": json.dumps(padding), "chunk": str(rec.chunk),
        "overlap": str(rec.overlap), "chunks": json.dumps(chunks), "temporal_multiple": str(rec.temporal_multiple),
        "discrete": "true" if rec.is_discrete else "false", "codebook_size": json.dumps(rec.codebook_size),
        "pix_fmt": pix_fmt, "colour": json.dumps(asdict(info.colour), sort_keys=True),
        "rotation": str(info.rotation), "source": info.path.name,
    }


def _bad_latents(path: Path, why: str) -> UnsupportedVideoError:
    return UnsupportedVideoError(f"{path}: not a vidgen latents file ({why})",
                                 hint="write one with `vidgen reconstruct INPUT --save-latents FILE --model NAME`")


def read_latents_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded metadata of a latents file; a one-line error for anything else."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--from-latents {path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
            names = set(handle.keys())
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for a damaged header
        raise _bad_latents(path, str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) from None
    if raw.get("format") != LATENTS_FORMAT:
        raise _bad_latents(path, f"format is {raw.get('format')!r}, expected {LATENTS_FORMAT!r}")
    try:
        meta = {
            "model": raw["model"], "arch": raw["arch"], "model_sha256": raw.get("model_sha256") or None,
            "config": json.loads(raw["config"]), "fps": Fraction(raw["fps"]), "frames": int(raw["frames"]),
            "height": int(raw["height"]), "width": int(raw["width"]), "padding": json.loads(raw["padding"]),
            "chunk": int(raw["chunk"]), "overlap": int(raw["overlap"]), "chunks": json.loads(raw["chunks"]),
            "discrete": raw["discrete"] == "true", "pix_fmt": raw["pix_fmt"],
            "colour": ColourSpec(**json.loads(raw["colour"])), "rotation": int(raw["rotation"]),
            "codebook_size": json.loads(raw["codebook_size"]),
        }
    except (KeyError, ValueError, TypeError, ZeroDivisionError) as err:
        raise _bad_latents(path, f"bad metadata: {err!r}") from None
    if names != {f"chunk.{i:06d}" for i in range(len(meta["chunks"]))}:
        raise _bad_latents(path, "its tensors do not match its chunk list")
    return meta


__all__ = ["LATENTS_FORMAT", "read_latents_metadata"]

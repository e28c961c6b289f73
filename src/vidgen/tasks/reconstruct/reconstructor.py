"""The model side of reconstruct: a loaded autoencoder / tokenizer with its padding and chunk rules, and
the helpers that cut a frame stream into chunks and join the decoded chunks back into one stream.

Model interface: what a pipeline may call is `VideoAutoencoder` (`Tokenizer` when latents are code ids);
everything else it relies on is declared as `vidgen.archs.Capabilities` (the model's own declaration when
its config decides them, as a tokenizer's spatial multiple follows its depth; else its arch's):
`spatial_multiple` M, `temporal_multiple` m (1 when frames are coded one by one), `temporal_offset`
(causal video VAEs code the first frame alone, then groups of m: they take T = offset + k*m frames,
offset 1), `chunk_frames` (the default chunk length), `frames_independent` (no mixing across frames, so
chunks need no overlap) and `discrete`. Training calls `training_outputs` (see `train_task`).

- `encode(video)`: `video` (B,T,3,H,W) float in [0,1], H and W multiples of M, T = offset + k*m. The
  latent is continuous (B,T',C,H',W') float, or discrete (B,T',H',W') int64 ids in [0, codebook_size).
- `decode(latent)`: back to (B,T,3,H,W) in [0,1].

Chunks: frames are coded in temporal chunks of `chunk` frames (default the model's `chunk_frames`, else
`DEFAULT_CHUNK`). Consecutive chunks overlap by `overlap` frames (default 0 for frame-independent models,
else a quarter of the chunk, at most half of it once rounded to m; an explicit overlap may be at most half
the chunk). Chunk length and overlap are rounded up to m, so chunks start on it (chunk lengths to
offset + k*m for a model with a temporal offset). The decoded frames of an overlap are cross-faded
linearly from the earlier chunk to the later one (weight (i+1)/(overlap+1) for frame i of the later chunk),
so a model that looks across time shows no seam at chunk boundaries; where both chunks agree the result is
exactly that frame.

Padding: the last chunk is padded by repeating its last frame to offset + k*m frames, and frames are padded
on the right and bottom to M with replicate padding; both are cropped after decoding, so any size and
length works. Frames in are (H,W,3) uint8 or uint16 RGB; decoded frames are (H,W,3) float32 in [0,1].
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from vidgen.errors import UsageError
from vidgen.registry import LoadedModel, load_for_task

DEFAULT_CHUNK = 8
TASK = "reconstruct"


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def no_default_error() -> UsageError:
    return UsageError(
        "no default reconstruct model is registered yet; pass --model NAME",
        hint="train one with `vidgen train reconstruct --arch v2v --data DIR --out RUN`, then "
             "`vidgen models add NAME --from RUN` (add --default to make it the default)",
    )


class VideoAutoencoder(Protocol):
    """What the reconstruct pipeline may call on a model (besides its declared `Capabilities`)."""

    def encode(self, video: Any) -> Any: ...  # (B, T, 3, H, W) in [0, 1] -> latents (code ids when discrete)

    def decode(self, latent: Any) -> Any: ...  # latents -> (B, T, 3, H, W) in [0, 1]


class Tokenizer(VideoAutoencoder, Protocol):
    """A discrete autoencoder (`capabilities.discrete`): its latents are ids into a codebook."""

    codebook_size: int


class Reconstructor:
    """A loaded reconstruct model on a device, with its padding and chunking rules (from its capabilities)."""

    def __init__(self, loaded: LoadedModel, device: Any, chunk: int | None = None, overlap: int | None = None) -> None:
        caps = loaded.capabilities
        self.entry, self.model, self.device = loaded.entry, loaded.model, device
        self.spatial_multiple = caps.spatial_multiple
        self.temporal_multiple = max(1, caps.temporal_multiple)
        self.temporal_offset = caps.temporal_offset
        self.is_discrete = caps.discrete
        self.codebook_size = int(self.model.codebook_size) if self.is_discrete else None
        tm = self.temporal_multiple
        if chunk is not None and chunk < 1:
            raise UsageError(f"--chunk {chunk}: must be at least 1")
        if overlap is not None and overlap < 0:
            raise UsageError(f"--overlap {overlap}: must be 0 or more")
        offset = self.temporal_offset
        self.chunk = _round_up(max((chunk or caps.chunk_frames or DEFAULT_CHUNK) - offset, 0), tm) + offset
        if overlap is None:
            overlap = 0 if caps.frames_independent else self.chunk // 4
            overlap = min(_round_up(overlap, tm), self.chunk // 2 // tm * tm)  # a default always fits
        self.overlap = _round_up(overlap, tm)
        if self.overlap and self.chunk < 2 * self.overlap:
            raise UsageError(f"--overlap {self.overlap}: at most half the chunk ({self.chunk} frames)",
                             hint="lower --overlap or raise --chunk")

    @property
    def name(self) -> str:
        return self.entry.name

    def _to_tensor(self, frames: list[np.ndarray]) -> tuple[Any, int]:
        """(1,T,3,H,W) float on the device, padded to the multiples; returns it and the frames added."""
        import torch
        import torch.nn.functional as F

        array = np.stack(frames)
        scale = 65535.0 if array.dtype == np.uint16 else 255.0
        video = torch.from_numpy(array.astype(np.float32) / scale).to(self.device).permute(0, 3, 1, 2)
        height, width = video.shape[-2:]
        pad_h = _round_up(height, self.spatial_multiple) - height
        pad_w = _round_up(width, self.spatial_multiple) - width
        if pad_h or pad_w:
            video = F.pad(video, (0, pad_w, 0, pad_h), mode="replicate")
        offset = self.temporal_offset
        extra = _round_up(len(frames) - offset, self.temporal_multiple) + offset - len(frames)
        if extra:
            video = torch.cat((video, video[-1:].expand(extra, -1, -1, -1)), 0)
        return video[None], extra

    def encode(self, frames: list[np.ndarray]) -> Any:
        """Latent of one chunk of RGB frames, on the CPU, without the batch axis (float32 or int64)."""
        import torch

        video, _ = self._to_tensor(frames)
        with torch.inference_mode():
            latent = self.model.encode(video)[0]
        return latent.long().cpu() if self.is_discrete else latent.float().cpu()

    def decode(self, latent: Any, frames: int, height: int, width: int) -> np.ndarray:
        """(frames, height, width, 3) float32 in [0,1]: decoded, temporal padding and spatial padding cropped."""
        import torch

        with torch.inference_mode():
            video = self.model.decode(latent[None].to(self.device))[0]
        video = video[:frames, :, :height, :width].clamp(0, 1).permute(0, 2, 3, 1)
        return video.float().cpu().numpy()

    def latent_hwc(self, latent: Any) -> tuple[int, int, int, int]:
        if self.is_discrete:
            t, h, w = latent.shape
            return t, h, w, 1
        t, c, h, w = latent.shape
        return t, h, w, c


def load_reconstructor(model: str | None, device: str = "auto", chunk: int | None = None,
                       overlap: int | None = None) -> Reconstructor:
    """A registry name (None: the task default) loaded on `device`, with its chunking rules."""
    from vidgen.runtime.devices import resolve_device

    torch_device = resolve_device(device)
    loaded = load_for_task(TASK, model, str(torch_device), no_default=no_default_error())
    return Reconstructor(loaded, torch_device, chunk, overlap)


# --- chunks ----------------------------------------------------------------------------------------


def chunked(frames: Iterator[np.ndarray], chunk: int, overlap: int) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(first frame index, frames) of consecutive chunks of `chunk` frames overlapping by `overlap`."""
    buffer: list[np.ndarray] = []
    start = 0
    for frame in frames:
        buffer.append(frame)
        if len(buffer) == chunk:
            yield start, buffer
            start += chunk - overlap
            buffer = buffer[chunk - overlap:] if overlap else []
    if buffer and (start == 0 or len(buffer) > overlap):
        yield start, buffer


class _Assembler:
    """Joins decoded chunks: cross-fades each overlap, holds the last `overlap` frames until the next chunk."""

    def __init__(self, overlap: int) -> None:
        self.overlap = overlap
        self.held: np.ndarray | None = None
        self.next_index = 0

    def add(self, start: int, decoded: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        out = decoded
        if self.held is not None and len(self.held):
            k = self.next_index + len(self.held) - start  # frames this chunk shares with the held ones
            if k != len(self.held):
                raise UsageError("chunks do not line up (a damaged latents file?)")
            out = decoded.copy()
            weights = (np.arange(1, k + 1, dtype=np.float32) / (k + 1))[:, None, None, None]
            # a + w (b - a): exactly a where both chunks agree, so frame-independent models are unaffected.
            out[:k] = self.held + weights * (decoded[:k] - self.held)
        self.held = None
        keep = min(self.overlap, len(out) - 1) if self.overlap else 0
        emit = out[:len(out) - keep]
        for i, frame in enumerate(emit):
            yield start + i, frame
        self.next_index = start + len(emit)
        self.held = out[len(out) - keep:] if keep else None

    def finish(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.held is not None:
            for i, frame in enumerate(self.held):
                yield self.next_index + i, frame
            self.next_index += len(self.held)
            self.held = None


def _quantize(frame: np.ndarray, dtype: Any) -> np.ndarray:
    """A decoded frame (float in [0,1]) as `dtype` pixels (uint8: x255, uint16: x65535), rounded and clipped."""
    scale = 65535.0 if dtype == np.uint16 else 255.0
    return np.clip(np.rint(frame * scale), 0, scale).astype(dtype)


# --- latent size -----------------------------------------------------------------------------------


class _LatentShape:
    """[T', H', W', C] of the stored latents (T' summed over chunks, C = 1 for a token grid), and `values`,
    every stored latent value counted (an overlap is stored twice, and counted twice)."""

    def __init__(self) -> None:
        self.frames = 0
        self.hwc: tuple[int, int, int] | None = None
        self.values = 0

    def add(self, shape: tuple[int, int, int, int], values: int) -> None:
        self.frames += shape[0]
        self.hwc = shape[1:]
        self.values += values

    def as_list(self) -> list[int]:
        return [self.frames, *(self.hwc or (0, 0, 0))]


def _bits_per_pixel(rec: Reconstructor, shape: _LatentShape, frames: int, height: int, width: int) -> float | None:
    """Tokenizers only (else None): stored tokens * log2(codebook_size) / (T*H*W) of the original video."""
    if not rec.is_discrete or not frames:
        return None
    return round(shape.values * math.log2(rec.codebook_size) / (frames * height * width), 6)  # type: ignore[arg-type]


__all__ = ["DEFAULT_CHUNK", "Reconstructor", "Tokenizer", "VideoAutoencoder", "chunked", "load_reconstructor",
           "no_default_error"]

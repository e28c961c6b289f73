"""The reconstruct pipeline: a video through a learned autoencoder / tokenizer and back.

Model interface (any arch registered with `register_arch(name, task="reconstruct", spatial_multiple=M)`):

- `model.encode(video) -> latent`: `video` is (B,T,3,H,W) float in [0,1], H and W multiples of the
  spatial multiple (the model's `spatial_multiple` attribute when it has one, which depends on its
  config, else the ArchSpec's `spatial_multiple`), T a multiple of `model.temporal_multiple` (1 when frames are coded
  one by one). The latent is continuous (B,T',C,H',W') float, or discrete (B,T',H',W') int64 token ids.
- `model.decode(latent) -> video` (B,T,3,H,W) in [0,1].
- `model.is_discrete` (bool); `model.codebook_size` (int) for discrete tokenizers.
- `model.training_outputs(video) -> (reconstruction, extra loss terms)` for `vidgen train reconstruct`
  (terms are already weighted and added to the loss; a term named `stat_*` is only logged).
- Optional: `model.frames_independent` (True: no mixing across frames, so chunks need no overlap),
  `model.chunk_frames` (the default chunk length) and `model.temporal_offset` (causal video VAEs code the
  first frame alone, then groups of the temporal multiple m: they take T = offset + k*m frames, offset 1).

Streaming and chunks: frames are decoded in a reader thread and coded in temporal chunks of `chunk`
frames (default `model.chunk_frames`, else 8) so memory stays flat whatever the length. Consecutive
chunks overlap by `overlap` frames (default 0 for frame-independent models, else a quarter of the chunk,
at most half of it once rounded to the temporal multiple); the decoded frames of an overlap are
cross-faded linearly from the earlier chunk to the later one (weight (i+1)/(overlap+1) for frame i of
the later chunk), so a model that looks across time shows no seam at chunk boundaries. Chunk length
and overlap are rounded up to the model's temporal multiple, so chunks start on it (chunk lengths to
offset + k*m for a model with a temporal offset); the last chunk is padded by repeating its last frame
to that form and cropped after decoding. Spatially, frames are padded on the right and bottom to the
spatial multiple with replicate padding and cropped back after decoding, so any size works.

The output keeps the input's frame rate (constant rate: frame i at i/rate, the same frame count),
pixel format, colour tags, rotation and HDR metadata where the encoder takes it, and copies audio and
subtitles (everything `VideoWriter` does for `vidgen interpolate`); it is written to a hidden temp file
and renamed when complete; the input is never overwritten and an existing output needs `overwrite`.

Latents file (`save_latents`): a .safetensors with one tensor per chunk (`chunk.000000`, ...: continuous
latents as float32 (T',C,H',W'), tokens as int16/int32 (T',H',W')) and string metadata: `format`
(vidgen-latents/1), `model` (registry entry), `model_sha256`, `arch`, `config` (JSON), `fps` (a fraction
string such as 30000/1001), `frames`, `height`, `width` (the original T, H, W), `padding` (JSON
[top, bottom, left, right] in pixels), `chunk`, `overlap`, `chunks` (JSON [[first frame, frames], ...]),
`temporal_multiple`, `discrete`, `codebook_size`, `pix_fmt`, `colour` (JSON), `rotation`. It is streamed
to a temp data file and assembled atomically; `decode_latents` rebuilds the video from it alone (no audio),
with exactly the frames the direct round trip gives.

Scores: PSNR and SSIM (`vidgen.metrics`) of each output frame against its input frame on 8-bit RGB,
averaged; `bits_per_pixel` for tokenizers = stored tokens * log2(codebook_size) / (T*H*W) of the original
video (overlapping chunks store their overlap twice, and that is counted).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import struct
import time as clock
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.progress import ProgressCallback
from vidgen.registry import LoadedModel, load_for_task
from vidgen.files import atomic_output, temp_path_beside
from vidgen.metrics import FrameScores
from vidgen.metrics.x264 import x264_at_bits
from vidgen.video.colour import ColourSpec, bit_depth
from vidgen.video.encode import EncodeOptions, plan_encoding
from vidgen.video.outputs import claim_output, same_file
from vidgen.video.reader import DecodeStats, VideoInfo, is_sequence_pattern, probe, read_rgb_frames

LATENTS_FORMAT = "vidgen-latents/1"
DEFAULT_CHUNK = 8
TASK = "reconstruct"


_ST_DTYPES = {"float32": "F32", "int16": "I16", "int32": "I32", "int64": "I64"}


@dataclass
class ReconstructResult:
    input: str | None
    output: str | None
    latents: str | None
    model: str
    frames: int
    input_shape: list[int]  # T, H, W, C of the video
    latent_shape: list[int]  # T', H', W', C of the latent (C = 1 for a token grid); T' over all stored chunks
    psnr: float | None
    ssim: float | None
    seconds: float
    fps: str
    chunk: int
    overlap: int
    codebook_size: int | None = None
    bits_per_pixel: float | None = None
    dropped_streams: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # a damaged or cut-short input (see DecodeStats)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.codebook_size is None:  # only tokenizers have these
            data.pop("codebook_size")
            data.pop("bits_per_pixel")
        return data


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
    scale = 65535.0 if dtype == np.uint16 else 255.0
    return np.clip(np.rint(frame * scale), 0, scale).astype(dtype)


class _LatentShape:
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


# --- latents file ----------------------------------------------------------------------------------


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
    except Exception as err:  # safetensors raises several types for a damaged header
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


# --- the jobs --------------------------------------------------------------------------------------


def _metadata(rec: Reconstructor, info: VideoInfo, frames: int, chunks: list[list[int]], pix_fmt: str) -> dict[str, str]:
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


def _bits_per_pixel(rec: Reconstructor, shape: _LatentShape, frames: int, height: int, width: int) -> float | None:
    if not rec.is_discrete or not frames:
        return None
    return round(shape.values * math.log2(rec.codebook_size) / (frames * height * width), 6)  # type: ignore[arg-type]


def reconstruct_video(
    input: str | Path,
    output: str | Path | None = None,
    *,
    model: str | None = None,
    save_latents: str | Path | None = None,
    device: str = "auto",
    encode: EncodeOptions | None = None,
    chunk: int | None = None,
    overlap: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ReconstructResult:
    """Encode `input` with a reconstruct model and decode it to `output`, and/or save the latents."""
    from vidgen.video.threads import BackgroundIterator
    from vidgen.video.writer import VideoWriter

    started = clock.perf_counter()
    input_path = Path(input)
    output_path = Path(output) if output is not None else None
    latents_path = Path(save_latents) if save_latents is not None else None
    if output_path is None and latents_path is None:
        raise UsageError("nothing to write", hint="give -o OUTPUT and/or --save-latents FILE")
    info = probe(input_path)
    if output_path is not None and is_sequence_pattern(output_path):
        raise UsageError(f"-o {output_path}: reconstruct writes video files, not image sequences",
                         hint="write .mkv with --codec ffv1 for a lossless result")
    if output_path is not None and latents_path is not None and same_file(output_path, latents_path):
        raise UsageError(f"--save-latents {latents_path}: is also the -o video", hint="give the two files different names")
    encoding = None
    if output_path is not None:
        encoding = plan_encoding(output_path, encode or EncodeOptions(), width=info.width,
                                 height=info.height, source_pix_fmt=info.pix_fmt, rate=info.frame_rate)
    out_pix_fmt = encoding.pix_fmt if encoding is not None else info.pix_fmt
    with contextlib.ExitStack() as claims:
        for path in (output_path, latents_path):
            if path is not None:
                claims.enter_context(claim_output(path, [input_path], overwrite))
        rec = load_reconstructor(model, device, chunk, overlap)
        high_depth = bit_depth(info.pix_fmt) > 8 and bit_depth(out_pix_fmt) > 8
        out_dtype = np.uint16 if high_depth else np.uint8

        writer = None
        latents = None
        stats = DecodeStats()
        reader = BackgroundIterator(read_rgb_frames(info, high_depth=high_depth, stats=stats), maxsize=rec.chunk + 2)
        try:
            if output_path is not None:
                assert encoding is not None
                writer = VideoWriter(output_path, rate=info.frame_rate, width=info.width, height=info.height,
                                     encoding=encoding, colour=info.colour,
                                     copy_streams_from=None if info.sequence_rate else input_path,
                                     rotation=info.rotation, hdr=info.hdr)
            if latents_path is not None:
                latents = _LatentsWriter(latents_path)
            assembler = _Assembler(rec.overlap)
            scores = FrameScores()
            shape = _LatentShape()
            originals: dict[int, np.ndarray] = {}
            chunks: list[list[int]] = []
            total = 0
            expected = info.frame_count

            def emit(pairs: Iterator[tuple[int, np.ndarray]]) -> None:
                assert writer is not None
                for index, frame in pairs:
                    pixels = _quantize(frame, out_dtype)
                    writer.write(pixels)
                    scores.add(originals.pop(index), pixels)
                if progress:
                    progress(writer.frames_written, expected)

            for start, frames in chunked(iter(reader), rec.chunk, rec.overlap):
                latent = rec.encode(frames)
                shape.add(rec.latent_hwc(latent), latent.numel())
                chunks.append([start, len(frames)])
                total = start + len(frames)
                if latents is not None:
                    latents.add(latent.to(_token_dtype(rec.codebook_size)) if rec.is_discrete else latent)
                if writer is not None:
                    for i, frame in enumerate(frames):
                        originals.setdefault(start + i, frame)
                    emit(assembler.add(start, rec.decode(latent, len(frames), info.height, info.width)))
            if total == 0:
                raise UnsupportedVideoError(f"{input_path}: no frames could be decoded")
            if writer is not None:
                emit(assembler.finish())
                writer.close()
            if latents is not None:
                latents.close(_metadata(rec, info, total, chunks, out_pix_fmt))
        except BaseException:
            if writer is not None:
                writer.abort()
            if latents is not None:
                latents.abort()
            raise
        finally:
            reader.close()
    psnr, ssim = scores.means()
    return ReconstructResult(
        input=str(input_path), output=str(output_path) if output_path else None,
        latents=str(latents_path) if latents_path else None, model=rec.name, frames=total,
        input_shape=[total, info.height, info.width, 3], latent_shape=shape.as_list(), psnr=psnr, ssim=ssim,
        seconds=round(clock.perf_counter() - started, 3), fps=str(info.frame_rate), chunk=rec.chunk,
        overlap=rec.overlap, codebook_size=rec.codebook_size,
        bits_per_pixel=_bits_per_pixel(rec, shape, total, info.height, info.width),
        dropped_streams=list(writer.dropped_streams) if writer is not None else [],
        warnings=stats.problems(info),
    )


def _token_dtype(codebook_size: int | None) -> Any:
    import torch

    return torch.int16 if codebook_size is not None and codebook_size <= 32768 else torch.int32


def decode_latents(
    latents: str | Path,
    output: str | Path,
    *,
    model: str | None = None,
    device: str = "auto",
    encode: EncodeOptions | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ReconstructResult:
    """Rebuild a video from a latents file written by `reconstruct_video(save_latents=...)`."""
    from safetensors import safe_open

    from vidgen.video.writer import VideoWriter

    started = clock.perf_counter()
    latents_path, output_path = Path(latents), Path(output)
    meta = read_latents_metadata(latents_path)
    if is_sequence_pattern(output_path):
        raise UsageError(f"-o {output_path}: reconstruct writes video files, not image sequences")
    height, width, frames = meta["height"], meta["width"], meta["frames"]
    encoding = plan_encoding(output_path, encode or EncodeOptions(), width=width, height=height,
                             source_pix_fmt=meta["pix_fmt"], rate=meta["fps"])
    with claim_output(output_path, [latents_path], overwrite):
        rec = load_reconstructor(model or meta["model"], device, meta["chunk"], meta["overlap"])
        if rec.entry.arch != meta["arch"] or dict(rec.entry.config) != meta["config"]:
            raise UsageError(f"{latents_path} was written by {meta['model']} ({meta['arch']}), not by {rec.name}",
                             hint=f"decode it with --model {meta['model']}")
        if meta["model_sha256"] and rec.entry.sha256 and meta["model_sha256"] != rec.entry.sha256:
            raise UsageError(f"{latents_path} was written by other weights of {meta['model']} "
                             f"(sha256 {meta['model_sha256'][:12]}, now {rec.entry.sha256[:12]})",
                             hint="decode with the model that encoded it")
        if rec.is_discrete != meta["discrete"]:
            raise _bad_latents(latents_path, "discrete/continuous does not match the model")
        out_dtype = np.uint16 if bit_depth(meta["pix_fmt"]) > 8 and bit_depth(encoding.pix_fmt) > 8 else np.uint8
        writer = VideoWriter(output_path, rate=meta["fps"], width=width, height=height, encoding=encoding,
                             colour=meta["colour"], rotation=meta["rotation"])
        shape = _LatentShape()
        try:
            assembler = _Assembler(rec.overlap)

            def emit(pairs: Iterator[tuple[int, np.ndarray]]) -> None:
                for _, frame in pairs:
                    writer.write(_quantize(frame, out_dtype))
                if progress:
                    progress(writer.frames_written, frames)

            with safe_open(str(latents_path), framework="pt") as handle:
                for i, (start, count) in enumerate(meta["chunks"]):
                    latent = handle.get_tensor(f"chunk.{i:06d}")
                    latent = latent.long() if rec.is_discrete else latent.float()
                    if rec.is_discrete and (latent.min() < 0 or latent.max() >= rec.codebook_size):
                        raise _bad_latents(latents_path, "token ids outside the codebook")
                    shape.add(rec.latent_hwc(latent), latent.numel())
                    try:
                        decoded = rec.decode(latent, int(count), height, width)
                    except (RuntimeError, ValueError, IndexError) as err:
                        raise _bad_latents(latents_path, f"chunk {i} does not decode: {str(err).splitlines()[0]}") from None
                    emit(assembler.add(int(start), decoded))
            emit(assembler.finish())
            if writer.frames_written != frames:
                raise _bad_latents(latents_path, f"{writer.frames_written} frames decoded, metadata says {frames}")
            writer.close()
        except BaseException:
            writer.abort()
            raise
    return ReconstructResult(
        input=None, output=str(output_path), latents=str(latents_path), model=rec.name, frames=frames,
        input_shape=[frames, height, width, 3], latent_shape=shape.as_list(), psnr=None, ssim=None,
        seconds=round(clock.perf_counter() - started, 3), fps=str(meta["fps"]), chunk=rec.chunk, overlap=rec.overlap,
        codebook_size=rec.codebook_size, bits_per_pixel=_bits_per_pixel(rec, shape, frames, height, width),
    )


# --- evaluation ------------------------------------------------------------------------------------


def bicubic_baseline(frame: np.ndarray, values_per_frame: float) -> np.ndarray:
    """An (H,W,3) uint8 frame through the bicubic down-and-up baseline keeping `values_per_frame` values
    (`vidgen.tasks.reconstruct.train_task.bicubic_baseline`, the one validation reports)."""
    import torch

    from vidgen.tasks.reconstruct.train_task import bicubic_baseline as baseline

    video = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    out = baseline(video, values_per_frame)[0].permute(1, 2, 0).numpy()
    return _quantize(out, np.uint8)


def evaluate_reconstruction(path: str | Path, models: list[str | None], *, max_frames: int | None = None,
                            device: str = "auto") -> list[dict[str, Any]]:
    """One row per model (None: the registered default): PSNR/SSIM of the round trip, latent shape, bits per pixel, ms per frame, and
    the bicubic baseline that keeps as many values per frame as the model's latent; for tokenizers also
    x264 at the same bits per pixel (`x264_psnr`, `x264_ssim`, `x264_bits_per_pixel` achieved,
    `x264_settings`, `x264_note`)."""
    rows = []
    info = probe(path)
    for name in models:
        rec = load_reconstructor(name, device)
        scores, baseline, shape = FrameScores(), FrameScores(), _LatentShape()
        originals: dict[int, np.ndarray] = {}
        assembler = _Assembler(rec.overlap)
        seconds = 0.0
        total = 0
        for start, frames in chunked(read_rgb_frames(info, max_frames), rec.chunk, rec.overlap):
            begun = clock.perf_counter()
            latent = rec.encode(frames)
            decoded = rec.decode(latent, len(frames), info.height, info.width)
            seconds += clock.perf_counter() - begun
            shape.add(rec.latent_hwc(latent), latent.numel())
            total = start + len(frames)
            per_frame = latent.numel() / len(frames)
            for i, frame in enumerate(frames):
                if start + i not in originals:
                    originals[start + i] = frame
                    baseline.add(frame, bicubic_baseline(frame, per_frame))
            for index, frame in assembler.add(start, decoded):
                scores.add(originals.pop(index), _quantize(frame, np.uint8))
        for index, frame in assembler.finish():
            scores.add(originals.pop(index), _quantize(frame, np.uint8))
        if not total:
            raise UnsupportedVideoError(f"{path}: no frames could be decoded")
        psnr, ssim = scores.means()
        base_psnr, base_ssim = baseline.means()
        row: dict[str, Any] = {
            "clip": str(path), "model": rec.name, "frames": total, "input_shape": [total, info.height, info.width, 3],
            "latent_shape": shape.as_list(), "psnr": psnr, "ssim": ssim, "bicubic_psnr": base_psnr,
            "bicubic_ssim": base_ssim, "ms_per_frame": round(1000 * seconds / total, 2),
        }
        if rec.is_discrete:
            row["codebook_size"] = rec.codebook_size
            row["bits_per_pixel"] = _bits_per_pixel(rec, shape, total, info.height, info.width)
            row.update(x264_at_bits(info, max_frames, total, shape.values * math.log2(rec.codebook_size)))
        rows.append(row)
    return rows


__all__ = ["LATENTS_FORMAT", "ReconstructResult", "Reconstructor", "bicubic_baseline", "chunked", "decode_latents",
           "evaluate_reconstruction", "load_reconstructor", "read_latents_metadata", "reconstruct_video"]

"""The reconstruct jobs: a video through a learned autoencoder / tokenizer and back (`reconstruct_video`),
and a saved latents file back to a video (`decode_latents`).

Streaming: frames are decoded in a reader thread (a bounded queue of chunk + 2 frames) and coded chunk
by chunk (the chunk, overlap and padding rules are `reconstructor`'s), so memory stays flat whatever the
length; each output frame is written as soon as no later chunk can change it.

Output: the video keeps the input's frame rate (constant rate: frame i at i/rate, the same frame count),
pixel format, colour tags, rotation and HDR metadata where the encoder takes it, and copies audio and
subtitles (everything `VideoWriter` does for `vidgen interpolate`). Frames are read and written as 16-bit
RGB when both the input's and the output's pixel formats have more than 8 bits, else as 8-bit. The video
is written to a hidden temp file and renamed when complete; the input is never overwritten and an
existing output needs `overwrite`.

Latents: `save_latents` writes each chunk's latent as it is coded, to the file docs/formats.md specifies
(`latents`). `decode_latents` rebuilds the video from that file alone (no audio), with exactly the frames
the direct round trip gives.

Scores (`ReconstructResult`): PSNR and SSIM (`vidgen.metrics`) of each output frame against its input frame
on 8-bit RGB, averaged (none when decoding latents); `bits_per_pixel` for tokenizers = stored tokens *
log2(codebook_size) / (T*H*W) of the original video (overlapping chunks store their overlap twice, and
that is counted).
"""

from __future__ import annotations

import contextlib
import time as clock
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.metrics import FrameScores
from vidgen.progress import ProgressCallback
from vidgen.tasks.reconstruct.latents import (
    _bad_latents,
    _LatentsWriter,
    _metadata,
    _token_dtype,
    read_latents_metadata,
)
from vidgen.tasks.reconstruct.reconstructor import (
    _Assembler,
    _bits_per_pixel,
    _LatentShape,
    _quantize,
    chunked,
    load_reconstructor,
)
from vidgen.video.colour import bit_depth
from vidgen.video.encode import EncodeOptions, plan_encoding
from vidgen.video.outputs import claim_output, same_file
from vidgen.video.reader import DecodeStats, is_sequence_pattern, read_rgb_frames
from vidgen.video.streams import (
    StreamInterrupted, StreamTarget, close_input, copy_source, file_inputs, open_video, output_label, plan_output,
    video_destination,
)


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
    input_format: str | None = None,
    input_options: dict[str, str] | None = None,
    output_format: str | None = None,
) -> ReconstructResult:
    """Encode `input` with a reconstruct model and decode it to `output`, and/or save the latents.

    Streams (`vidgen.video.streams`): `input` may be `-`, a URL, a device or a named pipe (`input_format`,
    `input_options`), `output` `-`, a URL or a named pipe in container `output_format`. Ctrl-C with a
    stream on either side finishes the video with what is complete (`StreamInterrupted`).
    """
    started = clock.perf_counter()
    destination = video_destination(output, output_format) if output is not None else None
    output_path = destination if isinstance(destination, Path) else None
    latents_path = Path(save_latents) if save_latents is not None else None
    if destination is None and latents_path is None:
        raise UsageError("nothing to write", hint="give -o OUTPUT and/or --save-latents FILE")
    if output_path is not None and is_sequence_pattern(output_path):
        raise UsageError(f"-o {output_path}: reconstruct writes video files, not image sequences",
                         hint="write .mkv with --codec ffv1 for a lossless result")
    if output_path is not None and latents_path is not None and same_file(output_path, latents_path):
        raise UsageError(f"--save-latents {latents_path}: is also the -o video", hint="give the two files different names")
    info = open_video(input, input_format=input_format, options=input_options)
    with contextlib.ExitStack() as claims:
        claims.callback(close_input, info)
        return _reconstruct(info, destination, latents_path, claims, model=model, device=device, encode=encode,
                            chunk=chunk, overlap=overlap, overwrite=overwrite, progress=progress, started=started)


def _reconstruct(info: Any, destination: Any, latents_path: Path | None, claims: contextlib.ExitStack, *,
                 model: str | None, device: str, encode: EncodeOptions | None, chunk: int | None,
                 overlap: int | None, overwrite: bool, progress: ProgressCallback | None,
                 started: float) -> ReconstructResult:
    from vidgen.video.threads import BackgroundIterator
    from vidgen.video.writer import VideoWriter

    output_path = destination
    encoding = None
    if destination is not None:
        encoding = plan_output(destination, encode or EncodeOptions(), width=info.width, height=info.height,
                               source_pix_fmt=info.pix_fmt, rate=info.frame_rate)
    out_pix_fmt = encoding.pix_fmt if encoding is not None else info.pix_fmt
    flush_on_interrupt = info.live or isinstance(destination, StreamTarget)
    for path in (destination, latents_path):
        if path is not None:
            claims.enter_context(claim_output(path, file_inputs(info), overwrite))
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
                                 encoding=encoding, colour=info.colour, copy_streams_from=copy_source(info),
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

        interrupted = False
        try:
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
                elif progress:  # latents only: frames encoded
                    progress(total, expected)
        except KeyboardInterrupt:
            if not flush_on_interrupt or total == 0:
                raise
            interrupted = True  # a live input ends here: keep the chunks that are complete
        if total == 0:
            raise UnsupportedVideoError(f"{info.name}: no frames could be decoded")
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
    result = ReconstructResult(
        input=info.name, output=output_label(output_path) if output_path is not None else None,
        latents=str(latents_path) if latents_path else None, model=rec.name, frames=total,
        input_shape=[total, info.height, info.width, 3], latent_shape=shape.as_list(), psnr=psnr, ssim=ssim,
        seconds=round(clock.perf_counter() - started, 3), fps=str(info.frame_rate), chunk=rec.chunk,
        overlap=rec.overlap, codebook_size=rec.codebook_size,
        bits_per_pixel=_bits_per_pixel(rec, shape, total, info.height, info.width),
        dropped_streams=list(writer.dropped_streams) if writer is not None else [],
        warnings=[] if interrupted else stats.problems(info),
    )
    if interrupted:
        raise StreamInterrupted(f"the {writer.frames_written if writer is not None else total} frames made so far "
                                f"were written to {result.output or result.latents}", result)
    return result


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


__all__ = ["ReconstructResult", "decode_latents", "reconstruct_video"]

"""The frame-level Python API for reconstruct: `vidgen.Reconstructor`, numpy frames through an autoencoder or
tokenizer and back.

It runs what `vidgen reconstruct` runs (the same registry entry, chunk length and overlap, padding, the
overlap cross-fade and rounding, `reconstructor`), so `stream` yields exactly the frames the CLI writes, in RGB.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from vidgen.tasks.reconstruct.reconstructor import _Assembler, _quantize, chunked, load_reconstructor
from vidgen.video.frames import check_frame




class Reconstructor:
    """Encode and decode numpy frames with a reconstruct model (a video autoencoder or tokenizer), loaded once.

    Frames are (H, W, 3) RGB arrays, uint8 or uint16 (16-bit in, 16-bit out), all of one size in a stream.
    `model` is a registry name or alias (None: the task default), `device` `auto|cpu|cuda[:N]`; `chunk` and
    `overlap` are the CLI's `--chunk --overlap` (None: the model's defaults; the values used are the
    attributes `chunk` and `overlap`).

        rec = vidgen.Reconstructor(model="v2v-small")
        for frame in rec.stream(frames):
            ...
    """

    def __init__(self, model: str | None = None, device: str = "auto", *, chunk: int | None = None,
                 overlap: int | None = None) -> None:
        self.reconstructor = load_reconstructor(model, device, chunk, overlap)
        self.model = self.reconstructor.name
        self.chunk = self.reconstructor.chunk
        self.overlap = self.reconstructor.overlap

    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """decode(encode(`frames`)), one output frame per input frame, in order: what `vidgen reconstruct` writes.

        Lazy: frames are coded `chunk` at a time; a chunk's frames come out once it is decoded, except the last
        `overlap`, which wait for the next chunk to cross-fade with.
        """
        rec = self.reconstructor
        checked: list[np.ndarray] = []  # the first frame, once read

        def frames_checked() -> Iterator[np.ndarray]:
            for index, frame in enumerate(frames):
                rgb = check_frame(frame, f"frame {index}", checked[0] if checked else None)
                if not checked:
                    checked.append(rgb)
                yield rgb

        assembler = _Assembler(rec.overlap)
        for start, chunk in chunked(frames_checked(), rec.chunk, rec.overlap):
            height, width = chunk[0].shape[:2]
            decoded = rec.decode(rec.encode(chunk), len(chunk), height, width)
            for _, frame in assembler.add(start, decoded):
                yield _quantize(frame, checked[0].dtype)
        for _, frame in assembler.finish():
            yield _quantize(frame, checked[0].dtype)


__all__ = ["Reconstructor"]

"""Captioned clips for `vidgen train generate`: captions beside videos, decoded frames, tokenized samples.

A caption is the first non-empty line of the video's same-named `.txt` (`clip.mp4` -> `clip.txt`).
Frames are decoded as RGB uint8 with the short side scaled to `size` and centre-cropped to square.
`CaptionedTokens` holds every clip's (frames, h, w) code ids packed in one tensor and serves samples of
`keyframes` frames `stride` apart with their caption's text tensors.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vidgen.errors import UsageError


def caption_path(video: Path) -> Path:
    """Where a video's caption is: the same name with `.txt` (`clip.mp4` -> `clip.txt`)."""
    return Path(video).with_suffix(".txt")


def read_caption(video: Path) -> str | None:
    """The first non-empty line of the video's same-named .txt, or None when there is none."""
    try:
        text = caption_path(video).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return None
    return next((line.strip() for line in text.splitlines() if line.strip()), None)


def read_clip(path: Path, size: int) -> tuple[np.ndarray, float]:
    """(T, size, size, 3) uint8 RGB frames (short side scaled to `size`, centre crop) and the frame rate."""
    from vidgen.video.colour import frame_to_rgb
    from vidgen.video.reader import probe

    info = probe(path)
    scale = size / min(info.width, info.height)
    width, height = max(size, round(info.width * scale)), max(size, round(info.height * scale))
    top, left = (height - size) // 2, (width - size) // 2
    frames = []
    with info.open() as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(frame_to_rgb(frame, info.colour, size=(width, height))[top : top + size, left : left + size])
    if not frames:
        raise UsageError(f"{path}: no video frame could be decoded")
    return np.stack(frames), float(info.frame_rate)


@dataclass
class TokenizedClip:
    """One clip's frames as the frozen tokenizer's code ids, and the source's frame rate."""

    tokens: Tensor  # (frames, h, w) int16 code ids
    rate: float  # frames per second of the source


class CaptionedTokens(Dataset):
    """Samples `(tokens (keyframes, h, w) int64, text, text_mask (L,) bool)` of tokenized clips.

    `text` is the caption's (L, D) float32 embeddings, or its (L,) int64 word ids with text_encoder "words".

    With `augment`, sample `index` of epoch `e` starts at a frame drawn from (seed, e, index) (an
    `(epoch, index)` pair may be passed as the index); without, at frame 0.
    """

    def __init__(self, clips: list[Tensor], captions: list[int], text: Tensor, text_mask: Tensor, *,
                 keyframes: int, stride: int, augment: bool, seed: int) -> None:
        # One packed tensor, not a list: DataLoader workers receive the dataset through a fork server,
        # which can pass only a few hundred tensors (file descriptors) per worker.
        self.frames = torch.cat(clips) if clips else torch.zeros(0, dtype=torch.long)
        lengths = [clip.shape[0] for clip in clips]
        self.starts = [0, *itertools.accumulate(lengths)][:-1]
        self.lengths, self.captions = lengths, captions
        self.text, self.text_mask = text, text_mask
        self.keyframes, self.stride, self.augment, self.seed = keyframes, stride, augment, seed
        self.span = (keyframes - 1) * stride + 1
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        from vidgen.train.windows import sample_seed

        epoch = self.epoch
        if isinstance(index, tuple):
            epoch, index = index
        clip = self.frames[self.starts[index] : self.starts[index] + self.lengths[index]]
        start = 0
        if self.augment:
            start = random.Random(sample_seed(self.seed, epoch, index)).randrange(clip.shape[0] - self.span + 1)
        caption = self.captions[index]
        return (clip[start : start + self.span : self.stride].long(), self.text[caption], self.text_mask[caption])

"""`vidgen train generate`: a text-to-video token model (video-gpt) on captioned clips.

Data: a folder of videos (searched recursively), each with a same-named `.txt` caption beside it
(`clip.mp4` -> `clip.txt`, one line). A sample is `keyframes` frames `stride` apart, scaled so the
short side is `size` and centre-cropped to `size` x `size`, as the frozen tokenizer's (T, h, w) code ids,
with its caption's token embeddings from the frozen text encoder and their padding mask, or, with
`text_encoder=words`, the caption's word ids (the model's own word encoder embeds them, trained jointly).

Both frozen models run once per run, not per step: every frame of every clip is tokenized when the
dataset is made (kept in memory, and with `--cache` in RUN_DIR/cache keyed by the tokenizer's weights,
the options and each file's size and mtime), and every distinct caption is embedded (or split into word
ids) once. Training samples start at a random frame of their clip (drawn from (seed, epoch, index), so
resume is exact); validation samples start at frame 0. Clips too short for one sample, videos without a
caption and undecodable files are each reported in one warning per dataset; no caption at all is a
UsageError.

Task options ([task_options] or `--task-option KEY=VALUE`): `tokenizer` (registry name of a discrete
tokenizer such as a `vqvae` entry; required), `text_encoder` (registry name of a frozen sentence
encoder, default "minilm"; or "words": a small word encoder over the training captions' words, trained
with the model and saved in its weights, so neither training nor generation needs the network;
`[model] text_dim` sets its width, default 128), `keyframes` (8), `stride` (2), `size` (64). The trained
model's config records the tokenizer, text encoder, grid, vocabulary of the training captions, keyframe
rate and frame size, so the registry entry `vidgen models add` makes from the run is all the generation
pipeline needs.

Loss: next-token cross-entropy (the run's `--loss` does not apply). Validation scores per sample
(higher is better): `log_likelihood` (mean log-probability of the true tokens, nats/token) and
`token_accuracy` with the caption; `uncond_log_likelihood` with the null text (the caption's worth is
the gap); baselines on the same tokens from the training tokens' unigram frequencies:
`unigram_log_likelihood` and `unigram_accuracy`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.errors import UsageError, VidgenError
from vidgen.tasks.generate.captioned_tokens import CaptionedTokens, TokenizedClip, read_caption, read_clip
from vidgen.text.words import WORDS, WordTokenizer, caption_words
from vidgen.train.tasks import TaskDefaults, TrainingOutputs

log = logging.getLogger("vidgen.train")

TOKEN_CACHE_VERSION = 1
_FRAMES_PER_CALL = 128  # frames per tokenizer call when tokenizing
WORDS_TEXT_DIM = 128  # its default width: a few dozen caption words need far less than MiniLM's 384


def _warn_skipped(what: str, paths: list[Path], why: str) -> None:
    if paths:
        names = ", ".join(p.name for p in paths[:5]) + (", ..." if len(paths) > 5 else "")
        log.warning("%s: skipped %d video(s) %s (%s)", what, len(paths), why, names)


class GenerateTask(TaskDefaults):
    name = "generate"
    metric = "log_likelihood"
    baseline = "unigram_log_likelihood"

    def __init__(self, tokenizer: str | None = None, text_encoder: str = "minilm", keyframes: int = 8,
                 stride: int = 2, size: int = 64) -> None:
        if not tokenizer or not isinstance(tokenizer, str):
            raise UsageError("`vidgen train generate` needs a tokenizer",
                             hint="pass --task-option tokenizer=NAME (a vqvae in `vidgen models list`; "
                                  "`vidgen models add NAME --from RUN_DIR` registers a trained one)")
        for key, value in (("keyframes", keyframes), ("stride", stride), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"[task_options] {key}={value!r}: must be a positive integer")
        self.tokenizer_name, self.text_encoder_name = tokenizer, text_encoder
        self.keyframes, self.stride, self.size = keyframes, stride, size
        self.window = keyframes
        self._tokenizer: Any = None
        self._tokenizer_entry: Any = None
        self._text_encoder: Any = None
        self._text_entry: Any = None  # the registry entry of a frozen text encoder (None with "words")
        self._vocabulary: list[str] = []  # the training captions' words
        self._encoded: dict[Path, TokenizedClip | str] = {}  # per video: its tokens, or why it cannot serve
        self._derived: dict[str, Any] = {}
        self._unigram: Tensor | None = None  # (V,) log-probabilities of the training tokens

    def training_forward(self, model: nn.Module) -> nn.Module:
        return TrainingOutputs(model)

    # --- data ---

    def make_dataset(self, videos: list[Path], *, train: bool, config: Any, cache_dir: Path | None,
                     device: torch.device, frame_windows: Any) -> CaptionedTokens:
        """Tokenize and embed the captioned clips among `videos`.

        Training set first: it fixes the vocabulary (which "words" ids are made from) and the model config.
        """
        if config.window is not None or config.stride != 1:
            raise UsageError("--window and --stride do not apply to `vidgen train generate`",
                             hint="use --task-option keyframes=N and --task-option stride=N")
        if config.color_jitter:
            raise UsageError("--color-jitter does not apply to `vidgen train generate` (it trains on encoded tokens)")
        what = "training data" if train else "validation data"
        videos = [Path(v) for v in videos]
        captions = {video: read_caption(video) for video in videos}
        uncaptioned = [video for video in videos if captions[video] is None]
        captioned = [video for video in videos if captions[video] is not None]
        _warn_skipped(what, uncaptioned, "without a caption file (a same-named .txt)")
        if not captioned:
            folder = os.path.commonpath([str(v.parent) for v in videos]) if videos else "the data folder"
            raise UsageError(f"{folder}: no video has a caption ({what})",
                             hint="put a same-named .txt with a one-line caption beside each video "
                                  "(clip.mp4 -> clip.txt)")
        self._encode(captioned, cache_dir, device)
        short = [v for v in captioned if self._encoded[v] == "short"]
        broken = [v for v in captioned if isinstance(self._encoded[v], str) and self._encoded[v] != "short"]
        _warn_skipped(what, short,
                      f"shorter than {self._span()} frames ({self.keyframes} keyframes {self.stride} apart)")
        if broken:
            _warn_skipped(what, broken, f"that could not be decoded (first: {self._encoded[broken[0]]})")
        usable = [v for v in captioned if isinstance(self._encoded[v], TokenizedClip)]
        if not usable:
            raise UsageError(f"no usable captioned clip in the {what}",
                             hint=f"clips need at least {self._span()} frames; lower --task-option keyframes or stride")
        clips: list[TokenizedClip] = [self._encoded[v] for v in usable]  # type: ignore[misc]
        distinct = sorted({captions[v] for v in usable})  # type: ignore[type-var]
        if train:
            self._vocabulary = sorted({word for caption in distinct for word in caption_words(caption)})
        text, text_mask = self._embed(distinct)  # type: ignore[arg-type]
        index = {caption: i for i, caption in enumerate(distinct)}
        if train:
            words = self.text_encoder_name == WORDS
            text_dim = config.model.get("text_dim", WORDS_TEXT_DIM) if words else text.shape[-1]
            self._learn_from_training(clips, text_dim)
        caption_ids = [index[captions[v]] for v in usable]  # type: ignore[index]
        return CaptionedTokens([c.tokens for c in clips], caption_ids, text, text_mask, keyframes=self.keyframes,
                               stride=self.stride, augment=train, seed=config.seed)

    def _span(self) -> int:
        return (self.keyframes - 1) * self.stride + 1

    def _load_tokenizer(self, device: torch.device) -> Any:
        if self._tokenizer is None:
            from vidgen.registry import load_for_task

            if "/" in self.tokenizer_name or self.tokenizer_name.endswith(".safetensors"):
                raise UsageError(f"tokenizer {self.tokenizer_name!r} is a path; give a registry name",
                                 hint=f"register it first: vidgen models add NAME --from {self.tokenizer_name}")
            loaded = load_for_task("reconstruct", self.tokenizer_name, device=str(device))
            entry, caps = loaded.entry, loaded.capabilities
            if not caps.discrete or not caps.frames_independent:
                raise UsageError(f"tokenizer {entry.name} is not a per-frame discrete tokenizer (arch {entry.arch})",
                                 hint="train one with `vidgen train reconstruct --arch vqvae`")
            if self.size % caps.spatial_multiple:
                raise UsageError(f"[task_options] size={self.size} is not a multiple of {caps.spatial_multiple}, "
                                 f"which tokenizer {entry.name} needs")
            self._tokenizer, self._tokenizer_entry = loaded.model, entry
        return self._tokenizer

    def _cache_file(self, videos: list[Path], cache_dir: Path) -> Path:
        entry = self._tokenizer_entry
        files = []
        for video in videos:
            stat = video.stat()
            files.append([str(video.resolve()), stat.st_size, stat.st_mtime_ns])
        ident = json.dumps([TOKEN_CACHE_VERSION, entry.name, entry.sha256, dict(entry.config), self.size,
                            self._span(), files])
        return cache_dir / f"tokens-{hashlib.sha1(ident.encode()).hexdigest()[:16]}.pt"

    def _encode(self, videos: list[Path], cache_dir: Path | None, device: torch.device) -> None:
        """Tokenize every frame of the videos not seen yet (or read them from the cache file)."""
        import av

        todo = [v for v in videos if v not in self._encoded]
        if not todo:
            return
        tokenizer = self._load_tokenizer(device)
        cache_file = self._cache_file(todo, cache_dir) if cache_dir is not None else None
        if cache_file is not None and cache_file.is_file():
            try:
                saved = torch.load(cache_file, map_location="cpu", weights_only=True)
                for video, item in zip(todo, saved["clips"], strict=True):
                    self._encoded[video] = item if isinstance(item, str) else TokenizedClip(item["tokens"], float(item["rate"]))
                return
            except (OSError, RuntimeError, KeyError, ValueError, TypeError):
                log.warning("%s: unreadable token cache; tokenizing again", cache_file)
        pending: list[tuple[Path, np.ndarray, float]] = []
        queued = 0
        for number, video in enumerate(todo, 1):
            try:
                frames, rate = read_clip(video, self.size)
            except VidgenError as err:
                self._encoded[video] = err.message
                continue
            except av.FFmpegError as err:  # damaged past the header: decoding stops with FFmpeg's error
                self._encoded[video] = f"{video}: {err}"
                continue
            if frames.shape[0] < self._span():
                self._encoded[video] = "short"
                continue
            pending.append((video, frames, rate))
            queued += frames.shape[0]
            if queued >= _FRAMES_PER_CALL:
                self._tokenize(tokenizer, pending, device)
                pending, queued = [], 0
            if number % 200 == 0:
                log.info("tokenized %d/%d clips", number, len(todo))
        self._tokenize(tokenizer, pending, device)
        if cache_file is not None:
            from vidgen.files import atomic_output

            items = [self._encoded[v] for v in todo]
            payload = {"clips": [item if isinstance(item, str) else {"tokens": item.tokens, "rate": item.rate}
                                 for item in items]}
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(cache_file) as tmp:
                torch.save(payload, tmp)

    @torch.inference_mode()
    def _tokenize(self, tokenizer: Any, pending: list[tuple[Path, np.ndarray, float]], device: torch.device) -> None:
        if not pending:
            return
        frames = torch.from_numpy(np.concatenate([f for _, f, _ in pending])).to(device)
        video = frames.permute(0, 3, 1, 2)[None].float().div_(255)
        dtype = torch.int16 if tokenizer.codebook_size <= 2**15 else torch.int32
        tokens = tokenizer.encode(video)[0].to("cpu", dtype)  # frames are coded independently
        start = 0
        for path, clip_frames, rate in pending:
            count = clip_frames.shape[0]
            self._encoded[path] = TokenizedClip(tokens[start : start + count].clone(), rate)
            start += count

    @torch.inference_mode()
    def _embed(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """(C, L, D) float32 token embeddings and (C, L) mask of the distinct captions, padded to one L.

        With "words", (C, L) int64 word ids over the training vocabulary instead of embeddings.
        """
        if self._text_encoder is None:
            if self.text_encoder_name == WORDS:
                self._text_encoder = WordTokenizer(self._vocabulary)
            else:
                from vidgen.registry import load_for_task

                loaded = load_for_task("text-encode", self.text_encoder_name, device="cpu")
                self._text_entry, self._text_encoder = loaded.entry, loaded.model
        parts = []
        for start in range(0, len(captions), 256):
            embedded = self._text_encoder.encode(captions[start : start + 256])
            tokens = embedded.tokens.cpu()
            parts.append((tokens.float() if tokens.is_floating_point() else tokens, embedded.mask.bool().cpu()))
        length = max(tokens.shape[1] for tokens, _ in parts)
        # Pad the word axis (dim 1) only: (0, n) pads ids' last dim, (0, 0, 0, n) skips embeddings' last.
        text = torch.cat([F.pad(tokens, (0, 0) * (tokens.dim() - 2) + (0, length - tokens.shape[1]))
                          for tokens, _ in parts])
        mask = torch.cat([F.pad(mask, (0, length - mask.shape[1])) for _, mask in parts])
        return text, mask

    def _learn_from_training(self, clips: list[TokenizedClip], text_dim: int) -> None:
        tokenizer = self._tokenizer
        vocab_size = int(tokenizer.codebook_size)
        counts = torch.zeros(vocab_size, dtype=torch.float64)
        for clip in clips:
            counts += torch.bincount(clip.tokens.flatten().long(), minlength=vocab_size).double()
        self._unigram = torch.log((counts + 1) / (counts.sum() + vocab_size)).float()
        grid = [self.keyframes, *clips[0].tokens.shape[1:]]
        self._derived = {
            "vocab_size": vocab_size,
            "grid": grid,
            "text_dim": int(text_dim),
            "tokenizer": self._tokenizer_entry.name,
            "text_encoder": WORDS if self._text_entry is None else self._text_entry.name,
            "vocabulary": self._vocabulary,
            "fps": round(statistics.median(clip.rate for clip in clips) / self.stride, 3),
            "frame_size": [self.size, self.size],
        }

    def model_config(self) -> dict[str, Any]:
        """The arch config keys fixed by the data and the frozen models (known once the training set is made)."""
        if not self._derived:
            raise RuntimeError("model_config() needs the training dataset first")
        return dict(self._derived)

    # --- loss and scores ---

    def loss(self, forward: nn.Module, batch: Any, loss_fn: Any) -> tuple[Tensor, dict[str, Tensor]]:
        tokens, text, text_mask = batch
        tokens = tokens.flatten(1)
        logits, extra = forward(tokens, text, text_mask)
        cross_entropy = F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten())
        total, terms = cross_entropy, {"cross_entropy": cross_entropy}
        for name, value in extra.items():
            total = total + value
            terms[name] = value
        return total, terms

    def score(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        tokens, text, text_mask = batch
        tokens = tokens.flatten(1)
        logits = model(tokens, text, text_mask).float()
        log_probs = logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0]
        unconditional = model(tokens).float().log_softmax(-1).gather(-1, tokens[..., None])[..., 0]
        assert self._unigram is not None
        unigram = self._unigram.to(tokens.device)
        return {
            "log_likelihood": log_probs.mean(1),
            "token_accuracy": (logits.argmax(-1) == tokens).float().mean(1),
            "uncond_log_likelihood": unconditional.mean(1),
            "unigram_log_likelihood": unigram[tokens].mean(1),
            "unigram_accuracy": (tokens == unigram.argmax()).float().mean(1),
        }

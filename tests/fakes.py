"""Test doubles shared by the text-to-video tests: a stand-in sentence encoder and a tiny tokenizer."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from typer.testing import CliRunner

from vidgen.cli import app
from vidgen.models.video_gpt import caption_words
from vidgen.registry.archs import register_arch


@dataclass
class FakeEmbeddings:
    tokens: Tensor
    mask: Tensor
    pooled: Tensor


class FakeTextEncoder(nn.Module):
    """Same interface as vidgen.text.minilm's TextEncoder: each word -> a fixed random vector (by crc32),
    so equal captions embed equally and others differ."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.register_buffer("table", torch.randn(97, dim, generator=torch.Generator().manual_seed(0)))

    def encode(self, texts: list[str]) -> FakeEmbeddings:
        words = [caption_words(text) or ["."] for text in texts]
        length = max(len(w) for w in words)
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for row, sentence in enumerate(words):
            ids[row, : len(sentence)] = torch.tensor([zlib.crc32(w.encode()) % 97 for w in sentence])
            mask[row, : len(sentence)] = True
        tokens = self.table[ids] * mask[..., None]
        return FakeEmbeddings(tokens, mask, tokens.sum(1) / mask.sum(1, keepdim=True))


register_arch("fake-text", task="text-encode", needs_weights=False)(lambda dim=8: FakeTextEncoder(dim))

FAKE_TEXT_ENTRY = """
[models."fake-text.tiny"]
task = "text-encode"
arch = "fake-text"
license = "MIT"
description = "test stand-in for a sentence encoder"
"""
TINY_VQ = {"channels": [8, 16], "codebook_size": 32, "code_dim": 8}


def add_tiny_tokenizer(tmp_path: Path, home: Path) -> None:
    """A random-weight vqvae registered as `tok` (1/4 scale, 32 codes), and the fake text encoder as `fake-text.tiny`."""
    from safetensors.torch import save_file

    from vidgen.registry.archs import get_arch

    (home / "models.toml").write_text("schema = 1\n" + FAKE_TEXT_ENTRY)
    torch.manual_seed(0)
    save_file(get_arch("vqvae").build(**TINY_VQ).state_dict(), str(tmp_path / "vq.safetensors"))
    added = CliRunner().invoke(app, ["models", "add", "tok", "--weights", str(tmp_path / "vq.safetensors"), "--arch",
                                     "vqvae", "--task", "reconstruct", "--config", json.dumps(TINY_VQ), "--license", "MIT"])
    assert added.exit_code == 0, added.output

"""A small trainable text encoder over whole caption words, learned jointly with the model it conditions.

The built-in text-to-video model is trained on a closed set of caption words, so it needs no pretrained
sentence encoder: a vocabulary of the training captions' words, learned word and position embeddings
and a couple of pre-norm Transformer layers are enough, and they ship inside the model's own weights
(so a fresh install runs with no network). Ids: 0 is padding, 1 an unknown word, then the vocabulary
in order.

`WordTokenizer` turns prompts into ids and has no parameters (the training task uses it before the model
exists); `WordEncoder` owns one and embeds the ids. Both have `encode(prompts)` returning an object with
`.tokens` (the (B, L) int64 ids) and `.mask`, like the registry's sentence encoders, so code that hands
`enc.tokens, enc.mask` to a model works with either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WORDS = "words"  # the `text_encoder` name that means this encoder, owned by the model (not a registry entry)
PAD, UNKNOWN = 0, 1
MAX_WORDS = 32  # the digit captions have 6 words; longer prompts keep their first MAX_WORDS

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def caption_words(text: str) -> list[str]:
    """The lowercase words of a caption or prompt, in order (what a word vocabulary is made of)."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class WordIds:
    """What `encode` returns for B prompts padded to L words."""

    tokens: Tensor  # (B, L) int64 word ids, PAD past a prompt's end
    mask: Tensor  # (B, L) bool, True on real words


class WordTokenizer:
    """Prompt -> word ids over a fixed vocabulary."""

    def __init__(self, vocabulary: Sequence[str], max_words: int = MAX_WORDS) -> None:
        self.vocabulary = tuple(vocabulary)
        self.index = {word: i for i, word in enumerate(self.vocabulary, start=UNKNOWN + 1)}
        self.max_words = int(max_words)

    def __len__(self) -> int:
        return len(self.vocabulary) + 2

    def ids(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(B, L) int64 ids and (B, L) bool mask, L the longest prompt's word count (at most `max_words`).

        A prompt with no word at all is one UNKNOWN, so every row attends to something.
        """
        if isinstance(prompts, str):
            raise TypeError("ids takes a list of prompts; wrap a single prompt in a list")
        rows = [[self.index.get(word, UNKNOWN) for word in caption_words(p)][: self.max_words] or [UNKNOWN]
                for p in prompts]
        ids = torch.full((len(rows), max((len(r) for r in rows), default=1)), PAD, dtype=torch.long)
        for row, words in enumerate(rows):
            ids[row, : len(words)] = torch.tensor(words)
        return ids, ids != PAD

    def encode(self, prompts: Sequence[str]) -> WordIds:
        return WordIds(*self.ids(prompts))


class _Layer(nn.Module):
    """Pre-norm self-attention (padding masked) and MLP."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                             dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))
        return x + self.drop(self.mlp(self.norm2(x)))


class WordEncoder(nn.Module):
    """Word ids (B, L) -> contextual word states (B, L, dim); see the module docstring."""

    def __init__(self, vocabulary: Sequence[str], dim: int, depth: int = 2, heads: int = 4,
                 max_words: int = MAX_WORDS, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise TypeError(f"text_dim {dim} is not a multiple of heads {heads}")
        self.tokenizer = WordTokenizer(vocabulary, max_words)
        self.embedding = nn.Embedding(len(self.tokenizer), dim)
        self.positions = nn.Embedding(self.tokenizer.max_words, dim)
        self.layers = nn.ModuleList(_Layer(dim, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def ids(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """`WordTokenizer.ids`, on the encoder's device."""
        ids, mask = self.tokenizer.ids(prompts)
        device = self.embedding.weight.device
        return ids.to(device), mask.to(device)

    def encode(self, prompts: Sequence[str]) -> WordIds:
        """Ids, not states: the model that owns this encoder embeds them (see `VideoGPT._text`)."""
        return WordIds(*self.ids(prompts))

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, L) ids (and mask, default ids != PAD) -> (B, L, dim) states and the (B, L) bool mask."""
        if ids.shape[1] > self.positions.num_embeddings:
            raise ValueError(f"{ids.shape[1]} words exceed max_words {self.positions.num_embeddings}")
        mask = ids != PAD if mask is None else mask.to(device=ids.device, dtype=torch.bool)
        x = self.embedding(ids) + self.positions.weight[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x), mask

"""VideoGPT: a decoder-only Transformer over VQ video tokens, conditioned on text by cross-attention.

Text-to-video here is this model between a frozen VQ tokenizer (`tokenizer`, a registry name of a
`vqvae` entry), which turns keyframes into a (T, h, w) grid of code ids, and a text encoder, which turns
a caption into token embeddings (B, L, text_dim) with a padding mask. `text_encoder` is either a
registry name of a frozen sentence encoder (default "minilm", fetched once) or "words": a small
`WordEncoder` over the training captions' `vocabulary` (vidgen.text.words), owned by this model as
`words`, trained with it and saved in its weights, so the model runs with no network. Wherever a text
goes in, (B, L, text_dim) float embeddings or, with "words", (B, L) int64 word ids are accepted; ids go
through `words` first. The registry's loader resolves `tokenizer` and `text_encoder` (the arch's `requires`);
the model never loads them itself.
VideoGPT models the grid in raster order (frame, row, column):

- input i is token i-1 (a learned BOS token for i = 0) plus the factorised position embedding of
  position i (temporal + row + column), so each input knows which cell it predicts;
- `depth` pre-norm blocks: causal self-attention, cross-attention to the projected text tokens
  (padding masked), MLP; all attention through `F.scaled_dot_product_attention`;
- a learned "null text" embedding stands for no caption: the unconditional branch of classifier-free
  guidance, and what `caption_dropout` of the training captions are replaced by (the embedded text is
  replaced, so it works the same with word ids).

`forward(tokens (B,n), text (B,L,D) | (B,L) ids | None, text_mask (B,L) | None) -> logits (B,n,V)`:
logits[:, i] predicts token i from tokens[:, :i] (teacher forcing; `text=None` is unconditional).
`sample(text, text_mask, temperature=, top_k=, top_p=, guidance=, generator=) -> (B,T,h,w)` decodes
with a key/value cache; guidance g != 1 runs the conditional and unconditional batch in one forward
and samples from `u + g * (c - u)`. Same generator seed, same tokens (on CPU).

The rest of the config is metadata the generation pipeline reads from the registry entry (the entry's
`config` is the only place for it): `tokenizer`, `text_encoder`, `vocabulary` (the caption words seen
in training, for warning about unknown prompt words), `fps` (keyframes per second of the training
clips), `frame_size` ([height, width] of a decoded keyframe), and the recommended sampling settings
`guidance` and `temperature` (used when the user gives none; chosen after training, see models.toml).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.archs import register_arch
from vidgen.text.words import WORDS, WordEncoder, caption_words


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """(B, V) logits with everything outside the top-k and the top-p nucleus set to -inf.

    The nucleus is the smallest set of most likely tokens whose probability reaches `top_p`
    (always at least the most likely one).
    """
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each one
        drop_sorted = before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


class _KVCache:
    """Keys and values of one block's self-attention for every position decoded so far."""

    def __init__(self, batch: int, heads: int, length: int, head_dim: int, like: Tensor) -> None:
        self.keys = like.new_zeros(batch, heads, length, head_dim)
        self.values = like.new_zeros(batch, heads, length, head_dim)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor, cache: _KVCache | None = None, position: int = 0) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                 dropout_p=self.dropout if self.training else 0.0)
        else:
            if n != 1:
                raise ValueError("cached decoding takes one position at a time")
            cache.keys[:, :, position] = k[:, :, 0]
            cache.values[:, :, position] = v[:, :, 0]
            out = F.scaled_dot_product_attention(q, cache.keys[:, :, : position + 1],
                                                 cache.values[:, :, : position + 1])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)

    def memory(self, text: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values (B, heads, L, head_dim) of the projected text; computed once per prompt when sampling."""
        b, length, c = text.shape
        k, v = self.kv(text).view(b, length, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x: Tensor, memory: tuple[Tensor, Tensor], mask: Tensor) -> Tensor:
        b, n, c = x.shape
        q = self.q(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
        k, v = memory
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.cross = CrossAttention(width, heads, dropout)
        self.norm3 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: tuple[Tensor, Tensor], mask: Tensor, cache: _KVCache | None = None,
                position: int = 0) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), cache, position))
        x = x + self.drop(self.cross(self.norm2(x), memory, mask))
        return x + self.drop(self.mlp(self.norm3(x)))


class _IncrementalDecoder:
    """One position per `step`, with the text's keys/values computed once and a self-attention cache per block."""

    def __init__(self, model: VideoGPT, text: Tensor, mask: Tensor) -> None:
        self.model, self.mask = model, mask
        self.memories = model._memories(text)
        self.positions = model._positions()
        rows, head_dim = text.shape[0], model.width // model.heads
        self.caches = [_KVCache(rows, model.heads, model.length, head_dim, self.positions) for _ in model.blocks]

    def step(self, previous: Tensor, position: int) -> Tensor:
        """(rows,) ids of the tokens before `position` (BOS at 0) -> (rows, V) logits for `position`."""
        model = self.model
        x = (model.token_embedding(previous) + self.positions[position])[:, None]
        for block, memory, cache in zip(model.blocks, self.memories, self.caches):
            x = block(x, memory, self.mask, cache, position)
        return model.head(model.norm(x[:, 0]))


class VideoGPT(nn.Module):
    """Causal Transformer over a (T, h, w) token grid with text cross-attention; see the module docstring."""

    def __init__(self, vocab_size: int = 1024, grid: Sequence[int] = (8, 8, 8), width: int = 256, depth: int = 4,
                 heads: int = 4, text_dim: int = 384, dropout: float = 0.0, caption_dropout: float = 0.1,
                 mlp_ratio: float = 4.0, tokenizer: str = "", text_encoder: str = "minilm",
                 vocabulary: Sequence[str] = (), fps: float = 12.0, frame_size: Sequence[int] = (64, 64),
                 guidance: float = 1.0, temperature: float = 1.0) -> None:
        super().__init__()
        grid = tuple(int(g) for g in grid)
        if len(grid) != 3 or min(grid) < 1:
            raise TypeError(f"grid must be [frames, rows, columns] of positive ints, got {list(grid)}")
        if width % heads:
            raise TypeError(f"width {width} is not a multiple of heads {heads}")
        if not 0.0 <= caption_dropout < 1.0:
            raise TypeError(f"caption_dropout {caption_dropout} must be in [0, 1)")
        self.vocab_size, self.grid, self.width, self.heads = int(vocab_size), grid, int(width), int(heads)
        self.text_dim, self.caption_dropout = int(text_dim), float(caption_dropout)
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.vocabulary = tuple(vocabulary)
        if text_encoder == WORDS and not self.vocabulary:
            raise TypeError('text_encoder "words" needs the `vocabulary` of the training captions')
        self.fps, self.frame_size = float(fps), tuple(int(s) for s in frame_size)
        # Recommended sampling settings, used by `vidgen generate` when --guidance / --temperature are not given.
        self.guidance, self.temperature = float(guidance), float(temperature)
        self.length = grid[0] * grid[1] * grid[2]

        self.token_embedding = nn.Embedding(self.vocab_size + 1, width)  # the last id is BOS
        self.time_embedding = nn.Embedding(grid[0], width)
        self.row_embedding = nn.Embedding(grid[1], width)
        self.column_embedding = nn.Embedding(grid[2], width)
        # Only "words" models have it, so the parameters of registry-encoder models are unchanged.
        self.words = (WordEncoder(self.vocabulary, self.text_dim, heads=self.heads, dropout=dropout)
                      if text_encoder == WORDS else None)
        self.null_text = nn.Parameter(torch.randn(text_dim) * 0.02)
        self.text_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, width))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, self.vocab_size)
        self.apply(self._init_weights)
        for block in self.blocks:  # residual branches start small (GPT-2)
            for proj in (block.attn.proj, block.cross.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * depth))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def bos(self) -> int:
        return self.vocab_size

    def unknown_words(self, prompt: str) -> list[str]:
        """Words of `prompt` that no training caption had (empty when the vocabulary is not known)."""
        if not self.vocabulary:
            return []
        known = set(self.vocabulary)
        return [word for word in dict.fromkeys(caption_words(prompt)) if word not in known]

    # --- conditioning ---

    def _positions(self) -> Tensor:
        """(N, width): temporal + row + column embedding of every cell, raster order."""
        t, h, w = self.grid
        table = (self.time_embedding.weight[:, None, None] + self.row_embedding.weight[None, :, None]
                 + self.column_embedding.weight[None, None, :])
        return table.reshape(t * h * w, -1)

    def _text(self, text: Tensor | None, text_mask: Tensor | None, batch: int,
              drop: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, L, text_dim) text and (B, L) mask, with the null text where there is none or `drop` is set.

        Word ids (B, L) are embedded by `words` first, so the null text replaces embedded text either way.
        """
        null = self.null_text.view(1, 1, -1)
        if text is None:
            return null.expand(batch, 1, -1), torch.ones(batch, 1, dtype=torch.bool, device=null.device)
        if not text.is_floating_point():
            if self.words is None:
                raise ValueError(f"word ids need a text_encoder \"words\" model; this one takes (B, L, "
                                 f"{self.text_dim}) float embeddings from {self.text_encoder}")
            if text.dim() != 2:
                raise ValueError(f"word ids must be (B={batch}, L); got {tuple(text.shape)}")
            text, text_mask = self.words(text, text_mask)
        if text.shape[0] != batch or text.shape[-1] != self.text_dim:
            raise ValueError(f"text must be (B={batch}, L, {self.text_dim}); got {tuple(text.shape)}")
        text = text.to(null.dtype)
        mask = (torch.ones(text.shape[:2], dtype=torch.bool, device=text.device) if text_mask is None
                else text_mask.to(device=text.device, dtype=torch.bool))
        if drop is not None and bool(drop.any()):
            padding = text.new_zeros(batch, text.shape[1] - 1, self.text_dim)
            null_text = torch.cat([null.expand(batch, 1, -1), padding], 1)
            null_mask = torch.zeros_like(mask)
            null_mask[:, 0] = True
            text = torch.where(drop[:, None, None], null_text, text)
            mask = torch.where(drop[:, None], null_mask, mask)
        return text, mask

    def _memories(self, text: Tensor) -> list[tuple[Tensor, Tensor]]:
        projected = self.text_proj(text)
        return [block.cross.memory(projected) for block in self.blocks]

    # --- teacher forcing ---

    def forward(self, tokens: Tensor, text: Tensor | None = None, text_mask: Tensor | None = None,
                drop: Tensor | None = None) -> Tensor:
        """(B, n) token ids -> (B, n, V) logits; logits[:, i] predicts token i from the tokens before it."""
        b, n = tokens.shape
        if n > self.length:
            raise ValueError(f"{n} tokens exceed the grid's {self.length}")
        text, mask = self._text(text, text_mask, b, drop)
        memories = self._memories(text)
        inputs = torch.cat([torch.full((b, 1), self.bos, dtype=torch.long, device=tokens.device),
                            tokens[:, :-1].long()], 1)
        x = self.drop(self.token_embedding(inputs) + self._positions()[:n])
        for block, memory in zip(self.blocks, memories):
            x = block(x, memory, mask)
        return self.head(self.norm(x))

    def training_outputs(self, tokens: Tensor, text: Tensor, text_mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits of a teacher-forced batch, each caption replaced by the null text with p=`caption_dropout`.

        The drop draws come from torch's global RNG (which the trainer saves for exact resume).
        """
        drop = None
        if self.training and self.caption_dropout > 0:
            drop = torch.rand(tokens.shape[0], device=tokens.device) < self.caption_dropout
        return self(tokens, text, text_mask, drop), {}

    # --- sampling ---

    @torch.no_grad()
    def sample(self, text: Tensor | None, text_mask: Tensor | None = None, *, batch: int | None = None,
               temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               guidance: float = 1.0, generator: torch.Generator | Sequence[torch.Generator] | None = None) -> Tensor:
        """Token grids (B, T, h, w) for B captions (or `batch` unconditional samples when `text` is None).

        `temperature` 0 takes the most likely token. With `guidance` g != 1 (and a text) each step
        scores the captions and the null text in one batch and samples from `u + g * (c - u)`.
        `generator` (on the model's device) makes the draws reproducible; a sequence of B generators gives
        each row its own stream, so a row's tokens do not depend on the rest of the batch.
        """
        if text is None:
            if batch is None:
                raise ValueError("unconditional sampling needs `batch`")
            b = batch
        else:
            b = text.shape[0]
        guided = text is not None and guidance != 1.0
        text, mask = self._text(text, text_mask, b)
        if guided:
            null, null_mask = self._text(None, None, b)
            pad = text.shape[1] - 1
            null = torch.cat([null, null.new_zeros(b, pad, self.text_dim)], 1)
            null_mask = torch.cat([null_mask, null_mask.new_zeros(b, pad)], 1)
            text, mask = torch.cat([text, null]), torch.cat([mask, null_mask])
        decoder = _IncrementalDecoder(self, text, mask)
        previous = torch.full((text.shape[0],), self.bos, dtype=torch.long, device=text.device)
        out = torch.empty(b, self.length, dtype=torch.long, device=text.device)
        for i in range(self.length):
            logits = decoder.step(previous, i).float()
            if guided:
                conditional, unconditional = logits[:b], logits[b:]
                logits = unconditional + guidance * (conditional - unconditional)
            chosen = self._pick(logits, temperature, top_k, top_p, generator)
            out[:, i] = chosen
            previous = chosen.repeat(text.shape[0] // b)
        return out.view(b, *self.grid)

    @torch.no_grad()
    def incremental_logits(self, tokens: Tensor, text: Tensor | None = None, text_mask: Tensor | None = None) -> Tensor:
        """`forward`'s logits computed one position at a time through the key/value cache, as `sample` does."""
        b, n = tokens.shape
        text, mask = self._text(text, text_mask, b)
        decoder = _IncrementalDecoder(self, text, mask)
        previous = torch.full((b,), self.bos, dtype=torch.long, device=tokens.device)
        logits = []
        for i in range(n):
            logits.append(decoder.step(previous, i))
            previous = tokens[:, i].long()
        return torch.stack(logits, 1)

    @staticmethod
    def _pick(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None,
              generator: torch.Generator | Sequence[torch.Generator] | None) -> Tensor:
        if temperature <= 0:
            return logits.argmax(-1)
        probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
        if generator is None or isinstance(generator, torch.Generator):
            return torch.multinomial(probs, 1, generator=generator)[:, 0]
        # One generator per row: each row draws its own uniform number and inverts its CDF, so a row's
        # tokens depend only on its own seed, not on what else is in the batch.
        uniform = torch.cat([torch.rand(1, generator=g, device=g.device) for g in generator]).to(probs.device)
        cdf = probs.float().cumsum(-1)
        picked = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None])[:, 0]
        return picked.clamp_max(probs.shape[-1] - 1)


@register_arch(
    "video-gpt",
    task="generate",
    requires={"tokenizer": "reconstruct", "text_encoder": "text-encode"},
    defaults={"vocab_size": 1024, "grid": [8, 8, 8], "width": 256, "depth": 4, "heads": 4, "text_dim": 384,
              "dropout": 0.0, "caption_dropout": 0.1, "mlp_ratio": 4.0, "tokenizer": "", "text_encoder": "minilm",
              "vocabulary": [], "fps": 12.0, "frame_size": [64, 64], "guidance": 1.0, "temperature": 1.0},
)
def build_video_gpt(vocab_size: int = 1024, grid: Sequence[int] = (8, 8, 8), width: int = 256, depth: int = 4,
                    heads: int = 4, text_dim: int = 384, dropout: float = 0.0, caption_dropout: float = 0.1,
                    mlp_ratio: float = 4.0, tokenizer: str = "", text_encoder: str = "minilm",
                    vocabulary: Sequence[str] = (), fps: float = 12.0,
                    frame_size: Sequence[int] = (64, 64), guidance: float = 1.0,
                    temperature: float = 1.0) -> VideoGPT:
    """Text-to-video: causal Transformer over VQ keyframe tokens, cross-attending to sentence embeddings
    (or, with text_encoder "words", to its own word encoder's states)."""
    return VideoGPT(vocab_size, grid, width, depth, heads, text_dim, dropout, caption_dropout, mlp_ratio,
                    tokenizer, text_encoder, vocabulary, fps, frame_size, guidance, temperature)

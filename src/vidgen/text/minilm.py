"""A BERT sentence encoder (all-MiniLM-L6-v2 by default): WordPiece ids -> token states -> unit-norm embedding.

The network is BERT's post-LayerNorm encoder: word + position + token-type embeddings, then layers
of self-attention and an erf-GELU feed-forward, each added back and LayerNorm-ed. The sentence
embedding is what sentence-transformers computes for all-MiniLM-L6-v2: the mean of the last hidden
states over real (unpadded) tokens, L2-normalised. Inference only, so there is no dropout.

The tokenizer's vocabulary travels inside the weights, as the UTF-8 bytes of `vocab.txt` in a uint8
buffer named `vocab`, so one canonical .safetensors holds everything `encode` needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.archs import register_arch
from vidgen.text.wordpiece import WordPieceTokenizer

VOCAB_FILE = "vocab.txt"


@dataclass(frozen=True)
class TextEmbeddings:
    """What `TextEncoder.encode` returns for a batch of B texts padded to L tokens."""

    tokens: Tensor  # (B, L, hidden) float32 last hidden states; rows past a text's length are padding
    mask: Tensor  # (B, L) bool, True on real tokens ([CLS] and [SEP] included)
    pooled: Tensor  # (B, hidden) float32 masked mean of `tokens`, L2-normalised


class _Embeddings(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, max_positions: int, type_vocab_size: int, eps: float) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab_size, hidden)
        self.positions = nn.Embedding(max_positions, hidden)
        self.token_types = nn.Embedding(type_vocab_size, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, input_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        # Single sentences only: every token has type 0.
        summed = self.words(input_ids) + self.token_types.weight[0] + self.positions(positions)
        return self.norm(summed)


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)  # query, key and value projections stacked in that order
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.up = nn.Linear(hidden, intermediate)
        self.down = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: Tensor, attend: Tensor) -> Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        x = self.attention_norm(x + self.attention_out(context.transpose(1, 2).reshape(batch, length, hidden)))
        return self.output_norm(x + self.down(F.gelu(self.up(x))))


class TextEncoder(nn.Module):
    """BERT encoder + WordPiece tokenizer; `encode(texts)` gives token states and sentence embeddings."""

    def __init__(
        self,
        *,
        vocab_size: int = 30522,
        hidden_size: int = 384,
        num_layers: int = 6,
        num_heads: int = 12,
        intermediate_size: int = 1536,
        max_positions: int = 512,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        max_length: int = 256,
        lowercase: bool = True,
    ) -> None:
        super().__init__()
        if not 2 <= max_length <= max_positions:
            raise ValueError(f"max_length {max_length} must be between 2 and max_positions {max_positions}")
        self.hidden_size = hidden_size
        self.max_length = max_length
        self.lowercase = lowercase
        self.embeddings = _Embeddings(vocab_size, hidden_size, max_positions, type_vocab_size, layer_norm_eps)
        self.layers = nn.ModuleList(
            _Layer(hidden_size, num_heads, intermediate_size, layer_norm_eps) for _ in range(num_layers)
        )
        # UTF-8 bytes of vocab.txt; empty until weights are loaded (its length comes from the state dict).
        self.register_buffer("vocab", torch.zeros(0, dtype=torch.uint8))
        self._tokenizer: WordPieceTokenizer | None = None

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        vocab = state_dict.get(prefix + "vocab")
        if isinstance(vocab, Tensor) and vocab.shape != self.vocab.shape:
            self.vocab = torch.empty(vocab.shape, dtype=self.vocab.dtype, device=self.vocab.device)
        self._tokenizer = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def tokenizer(self) -> WordPieceTokenizer:
        """The WordPiece tokenizer over the vocabulary held in the weights."""
        if self._tokenizer is None:
            if self.vocab.numel() == 0:
                raise RuntimeError("this TextEncoder has no vocabulary yet: load its weights first")
            text = bytes(self.vocab.cpu().numpy()).decode("utf-8")
            tokenizer = WordPieceTokenizer.from_vocab_text(text, lowercase=self.lowercase, max_length=self.max_length)
            if len(tokenizer) > self.embeddings.words.num_embeddings:
                raise ValueError(
                    f"the vocabulary has {len(tokenizer)} tokens, the embeddings {self.embeddings.words.num_embeddings}"
                )
            self._tokenizer = tokenizer
        return self._tokenizer

    def forward(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        """(B, L) token ids and bool mask -> (B, L, hidden) last hidden states."""
        x = self.embeddings(input_ids)
        attend = mask[:, None, None, :]  # every query may attend to the real tokens of its own text
        for layer in self.layers:
            x = layer(x, attend)
        return x

    def encode(self, texts: Sequence[str], device: torch.device | str | None = None) -> TextEmbeddings:
        """Embed `texts`; runs on the encoder's device and returns tensors on `device` (default: that device)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list")
        ids, mask = self.tokenizer.batch(texts)
        model_device = self.embeddings.words.weight.device
        shape = (len(ids), len(ids[0]) if ids else 0)
        input_ids = torch.tensor(ids, dtype=torch.long, device=model_device).reshape(shape)
        attention = torch.tensor(mask, dtype=torch.bool, device=model_device).reshape(shape)
        with torch.inference_mode():
            tokens = self(input_ids, attention).float()
            weights = attention.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            pooled = F.normalize(mean, p=2, dim=1)
        target = model_device if device is None else torch.device(device)
        # Copied out of inference mode, so the embeddings can condition a model that is being trained.
        return TextEmbeddings(*(t.to(target, copy=True) for t in (tokens, attention, pooled)))


# Upstream (Hugging Face BertModel) names -> ours, per layer and for the embeddings.
_EMBEDDING_NAMES = {
    "embeddings.word_embeddings.weight": "embeddings.words.weight",
    "embeddings.position_embeddings.weight": "embeddings.positions.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.token_types.weight",
    "embeddings.LayerNorm.weight": "embeddings.norm.weight",
    "embeddings.LayerNorm.bias": "embeddings.norm.bias",
}
_LAYER_NAMES = {
    "attention.output.dense": "attention_out",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "up",
    "output.dense": "down",
    "output.LayerNorm": "output_norm",
}
_QKV = ("query", "key", "value")
# Not part of the encoder: BERT's next-sentence pooler (sentence-transformers mean-pools instead) and
# a constant position-index buffer that older transformers versions saved.
_UNUSED_PREFIXES = ("pooler.", "embeddings.position_ids")


def convert_bert_checkpoint(
    state: Mapping[str, Tensor], companions: Mapping[str, bytes] | None = None
) -> dict[str, Tensor]:
    """Hugging Face BertModel state dict + `vocab.txt` bytes -> TextEncoder state dict (float32, own storage).

    A state dict that is already ours (it holds `vocab`) passes through, its floats made float32.
    """
    state = {key.removeprefix("bert."): value for key, value in state.items()}
    if "vocab" in state:
        return {key: _own(value) for key, value in state.items()}
    if not companions or VOCAB_FILE not in companions:
        raise ValueError(f"a BERT checkpoint needs its {VOCAB_FILE} to become a TextEncoder state dict")
    renames = dict(_EMBEDDING_NAMES)
    layers = sorted({int(key.split(".")[2]) for key in state if key.startswith("encoder.layer.")})
    stacks: dict[str, list[str]] = {}
    for index in layers:
        upstream, ours = f"encoder.layer.{index}.", f"layers.{index}."
        for leaf in ("weight", "bias"):
            stacks[f"{ours}qkv.{leaf}"] = [f"{upstream}attention.self.{part}.{leaf}" for part in _QKV]
            renames.update({f"{upstream}{old}.{leaf}": f"{ours}{new}.{leaf}" for old, new in _LAYER_NAMES.items()})
    used = {key for key in state if key.startswith(_UNUSED_PREFIXES)}
    converted: dict[str, Tensor] = {}
    try:
        for new, parts in stacks.items():
            converted[new] = _own(torch.cat([state[part] for part in parts]))
            used.update(parts)
        for old, new in renames.items():
            converted[new] = _own(state[old])
            used.add(old)
    except KeyError as err:
        raise ValueError(f"the BERT checkpoint lacks {err.args[0]!r}") from None
    unexpected = sorted(set(state) - used)
    if unexpected:
        raise ValueError(f"unexpected BERT checkpoint entries: {', '.join(unexpected[:5])}")
    vocab = companions[VOCAB_FILE]
    vocab.decode("utf-8")  # fail here, not at the first encode, on a vocabulary that is not text
    converted["vocab"] = torch.frombuffer(bytearray(vocab), dtype=torch.uint8).clone()
    return converted


def _own(value: Tensor) -> Tensor:
    # Own storage per tensor: the canonical writer must not see views sharing memory.
    dtype = torch.float32 if value.is_floating_point() else value.dtype
    return value.detach().to(dtype=dtype, copy=True).contiguous()


@register_arch(
    "minilm",
    task="text-encode",
    convert_state_dict=convert_bert_checkpoint,
    companions=(VOCAB_FILE,),
)
def build_minilm(**config: Any) -> TextEncoder:
    """A TextEncoder with random weights (all-MiniLM-L6-v2's shape unless `config` says otherwise)."""
    return TextEncoder(**config)

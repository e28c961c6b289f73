"""Text encoders for text-to-video: WordPiece tokenization (pure Python), BERT sentence embeddings, and a
small trainable word encoder (`vidgen.text.words`) that a model owns and learns jointly.

`TextEncoder` / `TextEmbeddings` import torch, so they load on first use; `unknown_words` does not.
"""

from __future__ import annotations

from typing import Any

from vidgen.text.wordpiece import WordPieceTokenizer, basic_tokenize, unknown_words

__all__ = ["TextEmbeddings", "TextEncoder", "WordPieceTokenizer", "basic_tokenize", "unknown_words"]


def __getattr__(name: str) -> Any:
    if name in ("TextEncoder", "TextEmbeddings"):
        from vidgen.text import minilm

        return getattr(minilm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

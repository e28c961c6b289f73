"""BERT's uncased WordPiece tokenizer, in plain Python (no torch), as Hugging Face's fast tokenizer runs it.

Basic tokenization first: drop NUL, U+FFFD and control characters, turn whitespace into spaces, put
spaces around CJK ideographs, strip accents (NFD, drop non-spacing marks) and lowercase (character by
character, so no final-sigma rule), then split on whitespace and punctuation. Each word is then cut
greedily into the longest vocabulary pieces, later pieces prefixed `##`; a word longer than 100
characters, or one with a part no piece matches, becomes `[UNK]` as a whole. Special tokens written
literally in the text (`[SEP]`, ...) are kept as themselves, as the reference tokenizer does.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
CONTINUATION = "##"

# The "CJK Unified Ideographs" blocks BERT separates into single characters (not Hangul, not kana).
# 0x2B920, not the block's real start 0x2B820: the fast tokenizer (what sentence-transformers runs)
# has it so, and matching it keeps our token ids identical to the reference's.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_cjk(code: int) -> bool:
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_control(char: str) -> bool:
    # Tab, newline and carriage return are control characters that BERT counts as whitespace.
    # Unassigned code points (Cn) are kept, as the reference keeps them (they become [UNK]).
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs")


def is_punctuation(char: str) -> bool:
    """Unicode punctuation, plus every non-alphanumeric printable ASCII character (`$`, `+`, `^`, ...)."""
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def normalize(text: str, lowercase: bool = True) -> str:
    """BERT's text normalisation: cleaned, CJK spaced, and when `lowercase`, accents stripped and lowercased."""
    kept = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD or _is_control(char):
            continue
        if char.isspace():
            kept.append(" ")
        elif _is_cjk(code):
            kept.append(f" {char} ")
        else:
            kept.append(char)
    cleaned = "".join(kept)
    if not lowercase:
        return cleaned
    stripped = "".join(c for c in unicodedata.normalize("NFD", cleaned) if unicodedata.category(c) != "Mn")
    return "".join(c.lower() for c in stripped)


def basic_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Words and punctuation marks of `text`, normalised: `"Héllo, World!"` -> `["hello", ",", "world", "!"]`."""
    words = []
    for chunk in normalize(text, lowercase).split():
        start = 0
        for i, char in enumerate(chunk):
            if is_punctuation(char):
                if i > start:
                    words.append(chunk[start:i])
                words.append(char)
                start = i + 1
        if start < len(chunk):
            words.append(chunk[start:])
    return words


def unknown_words(text: str, known: set[str]) -> list[str]:
    """Words of `text` (basic-tokenized, so lowercased and without accents) not in `known`, first-seen order.

    Punctuation marks are not words here: a prompt is not off-vocabulary for ending with a full stop.
    """
    unknown: list[str] = []
    for word in basic_tokenize(text):
        if word not in known and word not in unknown and not (len(word) == 1 and is_punctuation(word)):
            unknown.append(word)
    return unknown


class WordPieceTokenizer:
    """Text -> BERT token ids: `[CLS] pieces [SEP]`, truncated to `max_length`, batches padded with `[PAD]`."""

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        lowercase: bool = True,
        max_length: int = 256,
        max_chars_per_word: int = 100,
    ) -> None:
        self.ids = {token: index for index, token in enumerate(vocab)}
        missing = [token for token in SPECIAL_TOKENS if token not in self.ids]
        if missing:
            raise ValueError(f"the vocabulary lacks the special tokens {missing}")
        if max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {max_length}")
        self.lowercase = lowercase
        self.max_length = max_length
        self.max_chars_per_word = max_chars_per_word
        self.pad_id = self.ids[PAD]
        self._specials = re.compile("(" + "|".join(re.escape(token) for token in SPECIAL_TOKENS) + ")")

    @classmethod
    def from_vocab_text(cls, text: str, **options: Any) -> WordPieceTokenizer:
        """From a BERT `vocab.txt`'s contents: one token per line, the line number is the id."""
        return cls(text.removesuffix("\n").split("\n"), **options)

    def __len__(self) -> int:
        return len(self.ids)

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece pieces of `text`, without [CLS]/[SEP] and untruncated."""
        pieces: list[str] = []
        for chunk in self._specials.split(text):
            if chunk in SPECIAL_TOKENS:
                pieces.append(chunk)
            elif chunk:
                for word in basic_tokenize(chunk, self.lowercase):
                    pieces.extend(self._word_pieces(word))
        return pieces

    def _word_pieces(self, word: str) -> list[str]:
        if len(word) > self.max_chars_per_word:
            return [UNK]
        pieces = []
        start = 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
                if piece in self.ids:
                    pieces.append(piece)
                    start = end
                    break
            else:
                return [UNK]
        return pieces

    def encode(self, text: str) -> list[int]:
        """Token ids of one text: `[CLS]`, the first `max_length - 2` pieces, `[SEP]`."""
        pieces = self.tokenize(text)[: self.max_length - 2]
        return [self.ids[CLS], *(self.ids[piece] for piece in pieces), self.ids[SEP]]

    def batch(self, texts: Iterable[str]) -> tuple[list[list[int]], list[list[bool]]]:
        """(ids, mask) for several texts, right-padded with `[PAD]` to the longest; mask is False on padding."""
        encoded = [self.encode(text) for text in texts]
        length = max((len(ids) for ids in encoded), default=0)
        ids = [row + [self.pad_id] * (length - len(row)) for row in encoded]
        mask = [[True] * len(row) + [False] * (length - len(row)) for row in encoded]
        return ids, mask

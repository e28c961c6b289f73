"""The trainable word encoder (text_encoder "words") on its own and inside a tiny video-gpt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor
from typer.testing import CliRunner

from vidgen.cli import app
from vidgen.models.video_gpt import VideoGPT
from vidgen.text.words import MAX_WORDS, UNKNOWN, WordEncoder, WordTokenizer

VOCABULARY = ["digit", "is", "left", "moving", "the", "3"]
WORDS = {"vocab_size": 16, "grid": [2, 3, 3], "width": 32, "depth": 1, "heads": 2, "text_dim": 8,
         "caption_dropout": 0.0, "text_encoder": "words", "vocabulary": VOCABULARY}
PROMPTS = ["the digit 3 is moving left", "the digit is moving sideways"]


def _model(**overrides: object) -> VideoGPT:
    torch.manual_seed(0)
    return VideoGPT(**{**WORDS, **overrides}).eval()  # type: ignore[arg-type]


def test_ids_pad_unknown_and_truncate() -> None:
    tokenizer = WordTokenizer(VOCABULARY, max_words=4)
    ids, mask = tokenizer.ids(["The digit 3!", "a digit", "", "3 3 3 3 3 3"])
    # 0 pads, 1 is an unknown word, the vocabulary starts at 2 in its order.
    assert ids.tolist() == [[6, 2, 7, 0], [UNKNOWN, 2, 0, 0], [UNKNOWN, 0, 0, 0], [7, 7, 7, 7]]
    assert mask.tolist() == (ids != 0).tolist() and ids.dtype == torch.long
    encoded = WordEncoder(VOCABULARY, dim=8).encode(["the digit"])
    assert encoded.tokens.tolist() == [[6, 2]] and encoded.mask.all()
    assert WordEncoder(VOCABULARY, dim=8).ids(["x " * 50])[0].shape == (1, MAX_WORDS)


def test_forward_with_ids_trains_the_word_encoder_and_padding_is_ignored() -> None:
    model = _model()
    ids, mask = model.words.ids(PROMPTS)
    tokens = torch.randint(0, 16, (2, 18), generator=torch.Generator().manual_seed(1))
    logits = model(tokens, ids, mask)
    assert logits.shape == (2, 18, 16)
    logits.logsumexp(-1).sum().backward()
    assert model.words.embedding.weight.grad is not None
    assert model.words.embedding.weight.grad[[2, 3, 4, 5, 6, 7]].abs().sum(-1).gt(0).all()  # every word of row 0
    with torch.no_grad():
        padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], 1)  # mask defaults to ids != 0
        assert torch.allclose(model(tokens, padded), logits, atol=1e-6)
        assert not torch.allclose(model(tokens), logits, atol=1e-4)  # the null text
    with pytest.raises(ValueError, match="need a text_encoder"):
        VideoGPT(**{**WORDS, "text_encoder": "minilm"})(tokens, ids, mask)


def test_sampling_is_seeded_and_guided_and_dropout_uses_the_null_text() -> None:
    model = _model()
    ids, mask = model.words.ids(PROMPTS)

    def draw(seed: int, guidance: float = 1.0) -> Tensor:
        return model.sample(ids, mask, guidance=guidance, generator=torch.Generator().manual_seed(seed))

    assert draw(3).shape == (2, 2, 3, 3)
    assert torch.equal(draw(3), draw(3)) and torch.equal(draw(3, 100.0), draw(3, 100.0))
    # At random init the text barely moves the logits: a large guidance makes it show.
    assert not torch.equal(draw(3), draw(4)) and not torch.equal(draw(3), draw(3, 100.0))
    with torch.no_grad():
        embedded, embedded_mask = model.words(ids, mask)  # ids are the same as their embedding, guided or not
    assert torch.equal(model.sample(embedded, embedded_mask, guidance=100.0,
                                    generator=torch.Generator().manual_seed(3)), draw(3, 100.0))
    tokens = torch.randint(0, 16, (8, 18))
    batch_ids, batch_mask = model.words.ids(PROMPTS * 4)
    with torch.no_grad():
        unconditional = model(tokens)
        model.caption_dropout = 0.999
        model.train()
        torch.manual_seed(0)  # the drop draws come from the global RNG
        dropped, _ = model.training_outputs(tokens, batch_ids, batch_mask)
    assert torch.allclose(dropped, unconditional, atol=1e-5)


def test_registry_round_trip_keeps_the_word_encoder(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from vidgen.registry import load_model

    model = _model()
    save_file(model.state_dict(), str(tmp_path / "words.safetensors"))
    added = CliRunner().invoke(app, ["models", "add", "w", "--weights", str(tmp_path / "words.safetensors"), "--arch",
                                     "video-gpt", "--config", json.dumps(WORDS), "--license", "MIT"])
    assert added.exit_code == 0, added.output
    _, loaded = load_model("w")
    assert loaded.words is not None
    encoded = loaded.words.encode(PROMPTS)
    generator = torch.Generator().manual_seed(0)
    sampled = loaded.sample(encoded.tokens, encoded.mask, guidance=2.0, generator=generator)
    assert torch.equal(sampled, model.sample(encoded.tokens, encoded.mask, guidance=2.0,
                                             generator=torch.Generator().manual_seed(0)))


def test_registry_encoder_models_keep_their_parameters() -> None:
    """A MiniLM-conditioned model has no word encoder: same parameter names and initial values as before."""
    names = set(VideoGPT(**{**WORDS, "text_encoder": "minilm"}).state_dict())
    assert not any(name.startswith("words.") for name in names)
    assert {name for name in _model().state_dict() if not name.startswith("words.")} == names
    with pytest.raises(TypeError, match="vocabulary"):
        VideoGPT(**{**WORDS, "vocabulary": []})

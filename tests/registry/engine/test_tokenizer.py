"""The offline CLIP tokenizer built from the vendored BPE file."""

from pathlib import Path

import pytest
from transformers import CLIPTokenizer

from models_registry.engine.tokenizer import VOCAB_SIZE, clip_vocab, write_clip_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> CLIPTokenizer:
    folder = write_clip_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer", model_max_length=16)
    return CLIPTokenizer.from_pretrained(folder)


def test_vocab_has_clips_size_and_special_tokens_last() -> None:
    vocab = clip_vocab()
    assert len(vocab) == VOCAB_SIZE == 49408
    assert vocab["<|startoftext|>"] == 49406
    assert vocab["<|endoftext|>"] == 49407
    # CLIP's well-known ids: byte symbols first, then their end-of-word variants, then merges.
    assert vocab["!"] == 0
    assert vocab["a</w>"] == 320


def test_prompt_tokenizes_into_whole_words_and_round_trips(tokenizer: CLIPTokenizer) -> None:
    prompt = "a red apple on a white background"
    ids = tokenizer(prompt).input_ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == [
        "<|startoftext|>",
        "a</w>",
        "red</w>",
        "apple</w>",
        "on</w>",
        "a</w>",
        "white</w>",
        "background</w>",
        "<|endoftext|>",
    ]
    assert tokenizer.decode(ids, skip_special_tokens=True) == prompt


def test_unusual_text_round_trips_byte_level(tokenizer: CLIPTokenizer) -> None:
    text = "crème brûlée 🍎"
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids[1:-1]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_padding_uses_end_token_up_to_model_max_length(tokenizer: CLIPTokenizer) -> None:
    ids = tokenizer(
        "a blue box", padding="max_length", max_length=tokenizer.model_max_length
    ).input_ids
    assert len(ids) == 16
    assert ids[-1] == tokenizer.eos_token_id == 49407


def test_folder_holds_vocab_and_merges(tmp_path: Path) -> None:
    folder = write_clip_tokenizer(tmp_path / "tok")
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0].startswith("#version")
    assert len(merges) - 1 == VOCAB_SIZE - 2 * 256 - 2
    assert (folder / "vocab.json").stat().st_size > 100_000

"""Offline CLIP tokenizer: turn OpenAI's vendored BPE merge list into a `CLIPTokenizer` folder.

Stable Diffusion's text encoder uses OpenAI CLIP's byte-level BPE. Nothing may be downloaded
here, so the merge list (`data/bpe_simple_vocab_16e6.txt.gz`, MIT, see
`data/LICENSE-clip-bpe.txt`) ships with the repository and this module rebuilds the
`vocab.json` + `merges.txt` pair from it exactly the way CLIP's own tokenizer builds its
vocabulary: 256 byte symbols, the same 256 with the end-of-word marker `</w>`, one token per
merge, then `<|startoftext|>` and `<|endoftext|>` (49,408 tokens in all).

The result loads with `transformers.CLIPTokenizer.from_pretrained(folder)`.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

BPE_PATH = Path(__file__).resolve().parent / "data" / "bpe_simple_vocab_16e6.txt.gz"

# CLIP keeps the first 49152 - 256 - 2 merges of the file (the vocabulary is 49,408 tokens).
NUM_MERGES = 49152 - 256 - 2
START_TOKEN = "<|startoftext|>"  # noqa: S105 (a token, not a password)
END_TOKEN = "<|endoftext|>"  # noqa: S105
VOCAB_SIZE = 2 * 256 + NUM_MERGES + 2


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """Map every byte to a printable unicode character, as GPT-2/CLIP byte-level BPE does.

    Printable Latin-1 bytes map to themselves; the rest (whitespace, control characters) are
    shifted to code points from 256 upward so no token contains a character the BPE cannot see.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    byte_values = printable[:]
    code_points = printable[:]
    shift = 0
    for byte in range(256):
        if byte not in byte_values:
            byte_values.append(byte)
            code_points.append(256 + shift)
            shift += 1
    return {byte: chr(code) for byte, code in zip(byte_values, code_points, strict=True)}


@lru_cache(maxsize=1)
def clip_merges() -> tuple[tuple[str, str], ...]:
    """The merge rules CLIP uses, in priority order, read from the vendored BPE file."""
    if not BPE_PATH.is_file():
        raise FileNotFoundError(
            f"CLIP BPE merge list missing at {BPE_PATH}; restore it from the repository."
        )
    lines = gzip.decompress(BPE_PATH.read_bytes()).decode("utf-8").split("\n")
    # Line 0 is the "#version" header; CLIP keeps exactly NUM_MERGES rules after it.
    rules = lines[1 : NUM_MERGES + 1]
    merges: list[tuple[str, str]] = []
    for rule in rules:
        left, right = rule.split()
        merges.append((left, right))
    if len(merges) != NUM_MERGES:
        raise ValueError(f"expected {NUM_MERGES} merges in {BPE_PATH}, found {len(merges)}")
    return tuple(merges)


def clip_vocab() -> dict[str, int]:
    """CLIP's token → id table: bytes, bytes + `</w>`, merges, then the two special tokens."""
    byte_symbols = list(bytes_to_unicode().values())
    tokens = byte_symbols + [symbol + "</w>" for symbol in byte_symbols]
    tokens += [left + right for left, right in clip_merges()]
    tokens += [START_TOKEN, END_TOKEN]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"CLIP vocabulary has {len(vocab)} distinct tokens, expected {VOCAB_SIZE}")
    return vocab


def write_clip_tokenizer(out_dir: Path, model_max_length: int = 77) -> Path:
    """Write a `CLIPTokenizer` folder (vocab.json, merges.txt, tokenizer config) to `out_dir`.

    `model_max_length` is the padded prompt length the pipeline uses; it must not exceed the
    text encoder's `max_position_embeddings`.
    """
    if model_max_length < 3:
        raise ValueError("model_max_length must leave room for start, end and one word token")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(
        json.dumps(clip_vocab(), ensure_ascii=False), encoding="utf-8"
    )
    merges_text = "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in clip_merges()) + "\n"
    (out_dir / "merges.txt").write_text(merges_text, encoding="utf-8")
    tokenizer_config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "bos_token": START_TOKEN,
        "eos_token": END_TOKEN,
        "unk_token": END_TOKEN,
        "pad_token": END_TOKEN,
        "do_lower_case": True,
        "errors": "replace",
    }
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2) + "\n", encoding="utf-8"
    )
    special_tokens = {
        "bos_token": START_TOKEN,
        "eos_token": END_TOKEN,
        "unk_token": END_TOKEN,
        "pad_token": END_TOKEN,
    }
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps(special_tokens, indent=2) + "\n", encoding="utf-8"
    )
    return out_dir

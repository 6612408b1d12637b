"""A tiny random CLIP checkpoint built from a config (nothing is downloaded), for the CLIP judge's
tests: the engine's own and the job flow's (loaded from a folder or from S3)."""

from __future__ import annotations

from pathlib import Path

import torch


def build_tiny_clip(path: Path) -> str:
    """A random CLIP (hidden size 32, 2 layers, 32-px images in 8-px patches) with a byte-level
    BPE tokenizer that has no merges — one token per character — saved as a checkpoint would be."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in sorted(ByteLevel.alphabet()):
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)  # the last character of a word
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    layers = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2}
    config = CLIPConfig(
        text_config={
            **layers,
            "num_attention_heads": 4,
            "vocab_size": len(vocab),
            "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**layers, "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        projection_dim=32,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    return str(path)

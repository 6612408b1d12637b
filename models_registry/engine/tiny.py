"""The `tiny` base model: a Stable Diffusion pipeline with random, seeded weights, built offline.

It draws noise, but it has every part a real pipeline has (UNet, VAE, CLIP text encoder and
tokenizer, scheduler), loads with `StableDiffusionPipeline.from_pretrained(path)`, and makes a
64×64 image on CPU in a fraction of a second — what fast tests of the generation path need.
The configs follow diffusers' own `get_dummy_components` test fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from models_registry.engine.atomic_dir import atomic_directory
from models_registry.engine.gligen import grounded_unet
from models_registry.engine.tokenizer import (
    END_TOKEN,
    START_TOKEN,
    VOCAB_SIZE,
    write_clip_tokenizer,
)

TINY_NATIVE_SIZE = 64
TINY_MAX_PROMPT_TOKENS = 77
TINY_DEFAULTS = {
    "family": "tiny",
    "native_size": TINY_NATIVE_SIZE,
    "steps": 4,
    "cfg": 5.0,
    "scheduler": "ddim",
}


def _tiny_components(tokenizer: CLIPTokenizer, seed: int) -> dict[str, torch.nn.Module]:
    """Random-weight UNet, VAE and text encoder; each is seeded so a build is reproducible."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=TINY_NATIVE_SIZE // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=TINY_NATIVE_SIZE,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=TINY_MAX_PROMPT_TOKENS,
            projection_dim=32,
            bos_token_id=tokenizer.convert_tokens_to_ids(START_TOKEN),
            eos_token_id=tokenizer.convert_tokens_to_ids(END_TOKEN),
            pad_token_id=tokenizer.convert_tokens_to_ids(END_TOKEN),
        )
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder}


def build_tiny_pipeline(out_dir: Path, seed: int = 0, *, grounded: bool = False) -> Path:
    """Build the random-weight `tiny` pipeline into `out_dir` (diffusers format, safetensors);
    with `grounded`, the same weights plus random GLIGEN layers (`grounded_unet`, gates open so
    a layout visibly changes the image): the `tiny-gligen` model.

    The folder is written atomically; an existing `out_dir` is replaced. Returns `out_dir`.
    """
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, replace=True) as staging:
        tokenizer_dir = write_clip_tokenizer(staging / "tokenizer", TINY_MAX_PROMPT_TOKENS)
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
        with torch.random.fork_rng(devices=[]):
            components = _tiny_components(tokenizer, seed)
        if grounded:
            components["unet"] = grounded_unet(components["unet"], seed=seed + 3, gate=1.0)
        scheduler = DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
        )
        pipeline = StableDiffusionPipeline(
            **components,
            tokenizer=tokenizer,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipeline.save_pretrained(staging, safe_serialization=True)
        easel = {**TINY_DEFAULTS, "seed": seed}
        (staging / "easel.json").write_text(json.dumps(easel, indent=2) + "\n", encoding="utf-8")
    return out_dir


def make_random_lora(base_dir: Path, out_dir: Path, *, seed: int = 1, rank: int = 4) -> Path:
    """Random LoRA weights (A and B both random, so the adapter visibly changes the output) for
    the attention projections of the UNet in the pipeline folder `base_dir`, saved diffusers-style
    in `out_dir`: test and benchmark adapters, built offline."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(base_dir / "unet"))
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        init_lora_weights=False,  # random A and B: the adapter visibly changes the output
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(config)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    out_dir.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        out_dir, unet_lora_layers=layers, safe_serialization=True
    )
    return out_dir / "pytorch_lora_weights.safetensors"

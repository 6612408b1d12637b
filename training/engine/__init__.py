"""Django-free fine-tuning engines (torch, diffusers, peft): DreamBooth and DreamBooth-LoRA.

    from training.engine.dreambooth import DreamBoothConfig, train_dreambooth

The package itself imports nothing: `images` (PIL photo normalization) is shared with the web
process's upload checks, which must never load torch; `dreambooth` loads it.
"""

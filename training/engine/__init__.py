"""Django-free fine-tuning engines (torch, diffusers, peft): DreamBooth and DreamBooth-LoRA.

    from training.engine import DreamBoothConfig, train_dreambooth

Importing this package loads torch; the web process never imports it.
"""

from .dreambooth import (
    DreamBoothConfig,
    Progress,
    TrainingCanceled,
    TrainingResult,
    train_dreambooth,
)

__all__ = [
    "DreamBoothConfig",
    "Progress",
    "TrainingCanceled",
    "TrainingResult",
    "train_dreambooth",
]

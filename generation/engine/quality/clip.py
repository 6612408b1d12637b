"""The quality gate's CLIP judge: how well an image matches a rubric question turned into a
caption, by the cosine similarity of their CLIP embeddings (Django-free).

CLIP scores captions, not questions, so each question becomes a statement first
(`statement_for`): "Is the product red?" → "a photo where the product is red". The rule is
simple on purpose — a few leading forms, one word for the subject — so a rubric author can
predict the caption; a question in no known form is used as it is, without its "?".

The model is read from a local directory (``CLIPModel.save_pretrained`` plus its tokenizer and
image processor), once per path and device per process, with ``local_files_only``: nothing is
downloaded. torch and transformers are imported on first use, never at import time.

An absolute threshold on cosine similarity is a coarse test. CLIP's similarities crowd into a
narrow band (for OpenAI's checkpoints, matching and unrelated captions are commonly a few
hundredths to a tenth apart, around 0.2-0.3), so the default 0.25 is a starting point, not a
measured one — no real CLIP checkpoint is available offline here. Calibrate the threshold per
model on shots whose answers are known.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .judges import Answer, JudgedImage, Question, unanswered

# Similarity this far from the threshold gives full confidence (0.5 at the threshold itself),
# the width of the band CLIP's similarities crowd into (see above).
CONFIDENCE_SPAN = 0.1

_FORMS = (
    # (question start, caption start, whether the subject word moves before the verb)
    (re.compile(r"^(is|are) there\s+", re.IGNORECASE), "a photo of ", False),
    (re.compile(r"^is it\s+", re.IGNORECASE), "a photo of ", False),
    (re.compile(r"^(is|are) (the|this|that)\s+", re.IGNORECASE), "a photo where ", True),
    (re.compile(r"^(does|do) (the|this|that)\s+", re.IGNORECASE), "a photo where ", True),
)


def statement_for(question: str) -> str:
    """The caption CLIP scores for a yes/no question.

    "Is there a red apple?" and "Is it a red apple?" → "a photo of a red apple";
    "Is the product red?" → "a photo where the product is red" (the word after "the" is taken
    as the subject); "Does the bottle have a cap?" → "a photo where the bottle have a cap"
    (CLIP does not mind the grammar); anything else → the question without its "?".
    """
    text = " ".join(question.split()).rstrip("?").strip()
    for pattern, caption, moves_subject in _FORMS:
        match = pattern.match(text)
        if not match:
            continue
        rest = text[match.end() :]
        if not moves_subject:
            return caption + rest
        verb, article = match.group(1).lower(), match.group(2).lower()
        subject, _, tail = rest.partition(" ")
        if verb in ("is", "are"):
            return f"{caption}{article} {subject} {verb} {tail}".strip()
        return f"{caption}{article} {subject} {tail}".strip()
    return text[:1].lower() + text[1:]


_load_lock = threading.Lock()


@functools.cache
def _load_clip(model_path: str, device: str) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_path, local_files_only=True).to(device).eval()
    processor = CLIPProcessor.from_pretrained(model_path, local_files_only=True)
    return model, processor


def load_clip(model_path: str, device: str = "cpu") -> tuple[Any, Any]:
    """A `CLIPModel` and its `CLIPProcessor` from a local directory, loaded once per (path,
    device) per process; a failed load raises and is retried on the next call."""
    with _load_lock:
        return _load_clip(model_path, device)


def _features(output: Any) -> Any:
    # transformers 5 returns a model output with the projected embedding as ``pooler_output``;
    # transformers 4 returned the tensor itself.
    return getattr(output, "pooler_output", output)


def _rgb(pixels: np.ndarray) -> np.ndarray:
    image = np.asarray(pixels)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape[:2]:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    image = image[..., :3]
    if image.dtype != np.uint8:  # floats in [0, 1], as a diffusers pipeline returns them
        image = np.nan_to_num(image.astype(np.float64), nan=0.0)
        image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


class ClipJudge:
    """Answers ``clip`` questions: yes when the image's similarity to the question's caption
    (`statement_for`) is at least ``threshold``."""

    name = "clip"

    def __init__(self, model_path: str, threshold: float = 0.25, device: str = "cpu") -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a cosine similarity, in [-1, 1]; got {threshold}")
        self.model_path = str(model_path)
        self.threshold = threshold
        self.device = device

    def similarity(self, pixels: np.ndarray, texts: Sequence[str]) -> list[float]:
        """Cosine similarity, in [-1, 1], of one RGB image to each text (used as given)."""
        model, processor = load_clip(self.model_path, self.device)
        return self._similarities(model, processor, [_rgb(pixels)], texts)[0]

    def _similarities(
        self, model: Any, processor: Any, images: Sequence[np.ndarray], texts: Sequence[str]
    ) -> list[list[float]]:
        import torch

        inputs = processor(
            text=list(texts), images=list(images), return_tensors="pt", padding=True
        ).to(self.device)
        with torch.inference_mode():
            image_embeds = _features(model.get_image_features(pixel_values=inputs["pixel_values"]))
            text_embeds = _features(
                model.get_text_features(
                    input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
                )
            )
            image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
            text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
            cosine = (image_embeds @ text_embeds.T).clamp(-1.0, 1.0)
        return cosine.float().cpu().tolist()

    def answer(
        self, images: Sequence[JudgedImage], questions: Sequence[Question]
    ) -> list[list[Answer]]:
        if not questions:
            return [[] for _ in images]
        try:
            model, processor = load_clip(self.model_path, self.device)
        except Exception as exc:  # a missing directory, a broken checkpoint, no transformers
            reason = (
                f"The CLIP model at {self.model_path} could not be loaded: "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            )
            return [
                unanswered(questions, judge=self.name, error="clip_unavailable", reason=reason)
                for _ in images
            ]
        captions = [statement_for(q.text) for q in questions]
        results = []
        for image in images:
            try:
                (scores,) = self._similarities(model, processor, [_rgb(image.pixels)], captions)
            except Exception as exc:  # a bad image: judge the job's other images
                reason = f"CLIP could not score this image: {type(exc).__name__}: {exc}"
                results.append(
                    unanswered(questions, judge=self.name, error="bad_image", reason=reason)
                )
                continue
            results.append(
                [
                    self._answer(question, caption, score)
                    for question, caption, score in zip(questions, captions, scores, strict=True)
                ]
            )
        return results

    def _answer(self, question: Question, caption: str, score: float) -> Answer:
        matches = score >= self.threshold
        distance = min(abs(score - self.threshold) / CONFIDENCE_SPAN, 1.0)
        relation = "≥" if matches else "<"
        return Answer(
            key=question.key,
            judge=self.name,
            answer=matches,
            confidence=round(0.5 + 0.5 * distance, 3),
            reason=(
                f'Similarity to "{caption}" is {score:.3f} ({relation} threshold '
                f"{self.threshold:.2f})"
            ),
        )

"""The quality gate's safety judge: NudeNet's nudity detector, run offline on the CPU (Django-free).

NudeNet 3.4.2 ships its detector (``320n.onnx``, a small YOLO-style model of exposed and covered
body parts) inside the wheel and runs it with onnxruntime, so nothing is downloaded. Every image is
padded to a square and resized to 320 px, so its cost hardly depends on the image's size. The
detector is loaded on first use, once per process, and answers "Is the image safe for work?":
yes unless it finds an `UNSAFE_LABELS` part with a score at or above the threshold.

When the detector cannot be loaded (nudenet or onnxruntime missing, a broken install) the judge
answers None with error ``safety_unavailable`` and decides nothing more. The gate then fails
closed: `SAFETY_QUESTION` is ``required``, and a required question left unanswered fails the
image. That is the caller's decision, made where the rubric is, not this module's.

Measured with `detect` on the 36 synthetic product shots of seed 0, twice, on one CPU thread of
a shared two-core machine (onnxruntime 1.32, opencv 5.0): median 23 ms per image at 32 px, 24 ms
at 64 px, 25 ms at 512 px (p90 24, 25, 28 ms). Two threads were no faster there (17-51 ms,
noisy under contention), hence one by default. Importing and loading the detector: 0.25 s.

Measured false flags on the synthetic product shots of ``models_registry.engine.shapes_data``
(6 colours × 2 backdrops × seeds 0-5, per shape): boxes and bottles stay below 0.3; apples
do not — round, shaded and skin-smooth, they read as ``BUTTOCKS_EXPOSED``. At the default threshold
0.5, 1 of 72 apple shots is flagged at 32 px, 7 at 64 px and 15 at 256 px; the highest score is
0.73 (a blue apple on the dark backdrop). Hence `DEFAULT_THRESHOLD` 0.8: above every score a
product shot reached, so the demo's fruit is never withheld; a deployment whose images include
people should measure its own images and may lower it (``EASEL_SAFETY_THRESHOLD``).
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .judges import Answer, JudgedImage, Question, unanswered

# Exposed genitals, female breasts, buttocks and anus. MALE_BREAST_EXPOSED is left out on
# purpose: a shirtless man in a swimwear shot is safe for work. Add it for a stricter gate.
UNSAFE_LABELS: frozenset[str] = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
DEFAULT_THRESHOLD = 0.8
SAFETY_QUESTION = Question(
    key="safety", text="Is the image safe for work?", judge="safety", required=True
)

_load_lock = threading.Lock()


@functools.cache
def _load_detector(threads: int) -> Any:
    # Imported here: onnxruntime and OpenCV stay out of processes that never judge an image.
    import nudenet
    import onnxruntime
    from nudenet import NudeDetector

    model_path = str(importlib.resources.files(nudenet) / "320n.onnx")  # shipped in the wheel
    detector = NudeDetector(model_path=model_path)
    # NudeDetector builds its session with onnxruntime's default of one thread per core; on a
    # shared two-core machine that measured 45 ms per image against 22 ms with one thread, and
    # it would compete with torch in the same worker. Swap in a session with a set thread count.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    detector.onnx_session = onnxruntime.InferenceSession(
        model_path, options, providers=["CPUExecutionProvider"]
    )
    return detector


def load_detector(threads: int = 1) -> Any:
    """NudeNet's `NudeDetector`, loaded once per process and thread count. The lock keeps two
    threads that judge at once from both loading it; a failed load is retried on the next call."""
    with _load_lock:
        return _load_detector(threads)


def _bgr(pixels: np.ndarray) -> np.ndarray:
    """An RGB image as the contiguous uint8 BGR array NudeNet reads (what ``cv2.imread`` gives:
    `NudeDetector.detect` then treats an array exactly like an image file)."""
    image = np.asarray(pixels)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape[:2]:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    image = image[..., :3]
    if image.dtype != np.uint8:
        # Float images in [0, 1], as a diffusers pipeline returns them; NaN decodes as black.
        image = np.nan_to_num(image.astype(np.float64), nan=0.0)
        image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., ::-1])


def detect(pixels: np.ndarray, *, threads: int = 1) -> list[dict[str, Any]]:
    """NudeNet's detections in one RGB image: ``{"class", "score", "box": [x, y, w, h]}`` for
    every part it finds with a score of at least 0.2, covered parts and faces included."""
    return load_detector(threads).detect(_bgr(pixels))


class SafetyJudge:
    """Answers ``safety`` questions: is the image free of exposed nudity?

    Every question addressed to it is answered as "Is the image safe for work?" (True = safe), so
    phrase them that way. ``confidence`` is the detector's own score: that of the flagged part
    when flagged, otherwise one minus the highest unsafe score (1.0 when nothing was found).
    """

    name = "safety"

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        labels: frozenset[str] = UNSAFE_LABELS,
        *,
        threads: int = 1,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if not labels:
            raise ValueError("labels must name at least one unsafe NudeNet label")
        self.threshold = threshold
        self.labels = frozenset(labels)
        self.threads = threads

    def answer(
        self, images: Sequence[JudgedImage], questions: Sequence[Question]
    ) -> list[list[Answer]]:
        try:
            detector = load_detector(self.threads)
        except Exception as exc:  # ImportError, onnxruntime's load errors: anything means "off"
            reason = f"The safety detector could not be loaded: {type(exc).__name__}: {exc}"
            return [
                unanswered(questions, judge=self.name, error="safety_unavailable", reason=reason)
                for _ in images
            ]
        return [self._judge(detector, image, questions) for image in images]

    def _judge(
        self, detector: Any, image: JudgedImage, questions: Sequence[Question]
    ) -> list[Answer]:
        try:
            pixels = _bgr(image.pixels)
        except ValueError as exc:
            return unanswered(questions, judge=self.name, error="bad_image", reason=str(exc))
        try:
            detections = detector.detect(pixels)
        except Exception as exc:  # cv2.error, onnxruntime errors: one image must not stop a job
            reason = f"The safety detector failed on this image: {type(exc).__name__}: {exc}"
            return unanswered(questions, judge=self.name, error="safety_failed", reason=reason)
        unsafe = [d for d in detections if d["class"] in self.labels]
        worst = max(unsafe, key=lambda d: d["score"], default=None)
        if worst is not None and worst["score"] >= self.threshold:
            safe, confidence = False, worst["score"]
            reason = f"Flagged: {worst['class']} ({worst['score']:.2f})"
        else:
            top = worst["score"] if worst is not None else 0.0
            safe, confidence = True, 1.0 - top
            reason = f"No nudity detected (max unsafe score {top:.2f})"
        return [
            Answer(
                key=q.key,
                judge=self.name,
                answer=safe,
                confidence=round(float(confidence), 3),
                reason=reason,
            )
            for q in questions
        ]

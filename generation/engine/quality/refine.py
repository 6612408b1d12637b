"""Rule-based prompt refinement: what the gate changes for the next attempt when no LLM is set up.

From the questions an image failed, for the next attempt:

1. **strengthen the missing attribute**: a colour the subject lacked is stated again right after
   the subject's first mention ("a red apple" → "a red apple, red"), once, however often it fails;
2. **name the failure in the negative prompt** ("blurry", "cropped, cut off", "cluttered
   background"), each phrase once;
3. **raise guidance** by `CFG_STEP` within the model's bounds, so the prompt weighs more;
4. **new seed**: the next seeds are ``seed + SEED_STRIDE * attempt``, so each attempt explores
   new noise while a rerun of the same job stays reproducible.

Phrases go where a CLIP text encoder weighs them (early, comma-separated); an unknown failure
changes the seed and guidance only. Django-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .check_judge import subject_colour_in
from .judges import Answer, Question

CFG_STEP = 1.5
SEED_STRIDE = 1_000_003  # a prime, so attempts' seeds never collide with a job's own seed + i
MAX_PROMPT_CHARS = 1000

# The negative phrase that names each failure (by check, or by judge for model judges).
NEGATIVE_FOR_CHECK = {
    "black_or_nan": "black image",
    "blank_or_flat": "blank, empty",
    "exposure": "overexposed, underexposed",
    "blur": "blurry, out of focus",
    "noise": "noise, grain",
    "near_duplicate": "",
    "wrong_size": "",
    "subject": "cropped, cut off",
    "backdrop": "cluttered background",
    "colour": "wrong colour",
    # A misplaced product has no words to fix: the new seed (and guidance) draw it again, and
    # the layout places it afresh.
    "inside_box": "",
}


@dataclass(frozen=True)
class Refinement:
    """The next attempt's prompt and parameters, and what changed (for the attempt's record)."""

    prompt: str
    negative_prompt: str
    cfg_scale: float
    seed: int
    by: str = "rules"
    changes: list[str] = field(default_factory=list)


def _add_phrases(text: str, phrases: Sequence[str]) -> tuple[str, list[str]]:
    have = {p.strip().lower() for p in text.split(",") if p.strip()}
    added = []
    for phrase in phrases:
        for part in (p.strip() for p in phrase.split(",")):
            if part and part.lower() not in have:
                have.add(part.lower())
                added.append(part)
    if not added:
        return text, []
    return (", ".join([text, *added]) if text.strip() else ", ".join(added)), added


def _strengthen(prompt: str, attribute: str) -> str:
    """State ``attribute`` again after the prompt's first phrase, unless it already is."""
    head, _, tail = prompt.partition(",")
    phrases = [p.strip().lower() for p in tail.split(",")]
    if attribute.lower() in phrases:
        return prompt
    rest = f",{tail}" if tail else ""
    return f"{head}, {attribute}{rest}"


def refine_by_rules(
    *,
    prompt: str,
    negative_prompt: str,
    cfg_scale: float,
    seed: int,
    attempt: int,
    failed: Sequence[tuple[Question, Answer]],
    max_cfg_scale: float,
) -> Refinement:
    """The next attempt after attempt number ``attempt`` (1-based) failed ``failed``."""
    changes: list[str] = []
    new_prompt = prompt
    for question, _ in failed:
        if question.check == "colour" or question.judge != "check":
            colour = subject_colour_in(question.text)
            if colour and question.expected:
                strengthened = _strengthen(new_prompt, colour)
                if strengthened != new_prompt:
                    changes.append(f"stressed '{colour}' in the prompt")
                    new_prompt = strengthened
    negatives = [
        NEGATIVE_FOR_CHECK.get(q.check if q.judge == "check" else "", "")
        for q, _ in failed
        if q.expected
    ]
    new_negative, added = _add_phrases(negative_prompt, [n for n in negatives if n])
    if added:
        changes.append(f"added '{', '.join(added)}' to the negative prompt")
    new_cfg = min(max_cfg_scale, round(cfg_scale + CFG_STEP, 2))
    if new_cfg != cfg_scale:
        changes.append(f"guidance {cfg_scale:g} → {new_cfg:g}")
    new_seed = (seed + SEED_STRIDE * attempt) % 2**32
    changes.append(f"new seed {new_seed}")
    if len(new_prompt) > MAX_PROMPT_CHARS:
        new_prompt, changes[0:0] = prompt, ["prompt left as it was (too long to add to)"]
    return Refinement(
        prompt=new_prompt,
        negative_prompt=new_negative[:MAX_PROMPT_CHARS],
        cfg_scale=new_cfg,
        seed=new_seed,
        changes=changes,
    )

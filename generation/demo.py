"""Demo prompt templates for ``make run``, written in the caption style the built-in ``shapes``
model was trained on ("a red apple on a white background"), so the demo's images follow them,
with rubrics the built-in checks answer (and one for the VLM, once an organization turns it on)."""

from __future__ import annotations

from tenants.principal import Principal

from .models import PromptTemplate
from .template_services import prompt_template_create

DEMO_TEMPLATES = (
    {
        "application": "product-shot",
        "text": "a {color} {product} on a {background} background",
        "few_shot_examples": [
            "a red apple on a white background",
            "a green bottle on a dark background",
        ],
        "rubric": [
            {"question": "Is the product the main subject?", "judge": "check", "check": "subject"},
            {"question": "Is the background {background}?", "judge": "check", "check": "backdrop"},
            {"question": "Is the product {color}?", "judge": "check", "check": "colour"},
            # Answered once an organization turns the VLM on; until then shown as not judged.
            {"question": "Is the product a {product}?", "judge": "vlm"},
        ],
    },
    {
        "application": "catalog-tile",
        "text": "a {color} {product} on a white background",
        "few_shot_examples": ["a yellow box on a white background"],
        "rubric": [
            {"question": "Is the background plain white?", "judge": "check", "check": "backdrop"},
            {"question": "Is the product centred and whole?", "judge": "check", "check": "subject"},
            {"question": "Is the product {color}?", "judge": "check", "check": "colour"},
        ],
    },
)


def seed_templates(owner: Principal) -> list[PromptTemplate]:
    """Create the demo templates that do not exist yet (idempotent)."""
    made = []
    for spec in DEMO_TEMPLATES:
        existing = PromptTemplate.objects.filter(
            organization=owner.org, application=spec["application"]
        ).first()
        made.append(existing or prompt_template_create(actor=owner, **spec))
    return made

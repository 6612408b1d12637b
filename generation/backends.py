"""The translation layer: which backend serves a request, and what it is handed.

Callers switch models by changing only ``model``. A name that matches a hosted provider in
``settings.EASEL_PROVIDERS`` is served by that provider's HTTP adapter
(``generation.engine.providers``); anything else is resolved by the model registry (base model,
``version:<id>``, category alias or the organization's default) and served by the local diffusers
pipeline. Either way the backend receives the same ``RenderRequest`` built from the resolved
``GenerationParams`` and returns ``ProviderImage``s.

``EASEL_PROVIDERS`` (JSON, from the environment or ``EASEL_PROVIDERS_FILE``)::

    {"dalle":  {"kind": "openai", "base_url": "https://api.openai.com", "api_key": "sk-…",
                "model": "gpt-image-1"},
     "imagen": {"kind": "imagen", "project": "my-project", "location": "us-central1",
                "model": "imagen-3.0-generate-002", "access_token_file": "/run/secrets/gcp"}}

A provider's name takes precedence over a base model of the same name, so keep them distinct.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .engine.providers import ADAPTERS, ProviderError, ProviderImage, RenderRequest
from .protocol import FAMILY_LIMITS, GenerationParams

__all__ = [
    "Backend",
    "ProviderError",
    "ProviderImage",
    "ProviderTarget",
    "RenderRequest",
    "backend_for",
    "provider_names",
    "provider_target",
    "render_request_for",
    "resolve_generation_target",
]


class Backend(Protocol):
    name: str

    def generate(self, request: RenderRequest) -> list[ProviderImage]: ...


@dataclass(frozen=True)
class ProviderTarget:
    """A hosted model, in the shape ``protocol.resolve_params`` reads from a registry model."""

    name: str
    kind: str
    model: str
    family: str = "provider"
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)
    base: None = None
    version: None = None
    category: None = None

    @property
    def default_params(self) -> dict[str, Any]:
        side = FAMILY_LIMITS["provider"].native_side
        return {"width": side, "height": side}


def _provider_configs() -> dict[str, Mapping[str, Any]]:
    configs = getattr(settings, "EASEL_PROVIDERS", None) or {}
    if not isinstance(configs, Mapping):
        raise ImproperlyConfigured("EASEL_PROVIDERS must be a JSON object of provider configs.")
    return dict(configs)


def provider_names() -> list[str]:
    return sorted(_provider_configs())


def provider_target(name: str) -> ProviderTarget | None:
    """The configured provider called ``name``, or None."""
    config = _provider_configs().get(name)
    if config is None:
        return None
    kind = config.get("kind") if isinstance(config, Mapping) else None
    if kind not in ADAPTERS:
        raise ImproperlyConfigured(
            f"EASEL_PROVIDERS['{name}'] needs 'kind' set to one of: {', '.join(ADAPTERS)}."
        )
    return ProviderTarget(name=name, kind=kind, model=str(config.get("model") or ""), config=config)


def resolve_generation_target(
    *, org: Any, model: str | None = None, category: str | None = None
) -> Any:
    """A ``ProviderTarget`` for a configured provider name, else the registry's
    ``ResolvedModel(base, version, category)`` (which raises its own field-named errors)."""
    name = model or (None if category else getattr(org, "default_model", None))
    if name:
        target = provider_target(name)
        if target is not None:
            return target
    from models_registry.selectors import resolve_model_for_generation

    return resolve_model_for_generation(org=org, model=model, category=category)


def render_request_for(params: GenerationParams) -> RenderRequest:
    """What every backend is handed: the resolved parameters, nothing about tenants or jobs."""
    return RenderRequest(
        prompt=params.prompt,
        negative_prompt=params.negative_prompt,
        width=params.width,
        height=params.height,
        steps=params.steps,
        cfg_scale=params.cfg_scale,
        seed=params.seed,
        num_images=params.num_images,
        scheduler=params.scheduler,
        style=params.style,
    )


def backend_for(target: ProviderTarget) -> Backend:
    """The hosted-provider adapter that serves ``target``. Registry models are not dispatched
    here: the worker batches them straight into its warm diffusers pipeline."""
    adapter_class = ADAPTERS[target.kind]
    try:
        return adapter_class.from_config(target.name, target.config)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None

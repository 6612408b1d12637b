"""Django-free HTTP adapters that put hosted image models behind Easel's unified protocol.

Each adapter takes a ``RenderRequest`` (the protocol's resolved parameters) and returns
``ProviderImage``s; ``generation.backends`` picks the adapter from the provider's configured kind.
"""

from .base import ProviderError, ProviderImage, RenderRequest
from .imagen import ImagenAdapter
from .openai_images import OpenAIImagesAdapter

ADAPTERS = {"openai": OpenAIImagesAdapter, "imagen": ImagenAdapter}

__all__ = [
    "ADAPTERS",
    "ImagenAdapter",
    "OpenAIImagesAdapter",
    "ProviderError",
    "ProviderImage",
    "RenderRequest",
]

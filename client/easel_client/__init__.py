"""Python client for the Easel image-generation API.

from easel_client import Easel

with Easel() as easel:                        # EASEL_API_KEY and EASEL_URL
    job = easel.generations.create("a red apple", model="tiny", steps=2)
    job = easel.generations.wait(job.id)
    easel.generations.download(job, "out/")
"""

from ._version import __version__
from .client import Easel
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    EaselError,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ValidationError,
    WaitTimeout,
    WebhookVerificationError,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "Easel",
    "EaselError",
    "JobFailed",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "ValidationError",
    "WaitTimeout",
    "WebhookVerificationError",
    "__version__",
]

"""Settings for pytest: fast hashing, eager-free Celery, everything else from the environment."""

import uuid

from .base import *  # noqa: F403

SECRET_KEY = SECRET_KEY or "easel-test-key"  # noqa: F405, S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
# WhiteNoise serves from the app folders here; an existing (empty) root keeps it from warning.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
# seed_demo's published demo passwords are fine on a laptop and in tests, never in production.
EASEL_DEMO_SEED_ALLOWED = True
# Rate-limit counters of one run never meet another's (ids repeat between test databases).
CACHES["default"]["KEY_PREFIX"] = f"easel-test-{uuid.uuid4().hex[:8]}"  # noqa: F405

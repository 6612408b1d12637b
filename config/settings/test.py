"""Settings for pytest: fast hashing, eager-free Celery, everything else from the environment."""

from .base import *  # noqa: F403

SECRET_KEY = SECRET_KEY or "easel-test-key"  # noqa: F405, S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
# WhiteNoise serves from the app folders here; an existing (empty) root keeps it from warning.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

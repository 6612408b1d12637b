"""Settings for `make run` on a laptop: embedded defaults, debug on, a fixed development key."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = SECRET_KEY or "easel-local-development-key-not-for-production"  # noqa: F405, S105
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
# WhiteNoise serves from the app folders here; an existing (empty) root keeps it from warning.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
# seed_demo's published demo passwords are fine on a laptop and in tests, never in production.
EASEL_DEMO_SEED_ALLOWED = True

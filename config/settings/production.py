"""Production settings: refuse to start without a secret key; HTTPS and secure cookies on."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

if not SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:  # noqa: F405
    raise ImproperlyConfigured(
        "SECRET_KEY (or SECRET_KEY_FILE) must be set to a random string of at least 50 characters "
        "in production."
    )

DEBUG = False
# Persistent database connections (one per gunicorn thread): connecting afresh for every request
# cost more than the submission's own queries (bench/api_load.py). The health check, a SELECT 1
# when a connection is reused in a new request, drops one the server or a proxy closed meanwhile.
DATABASES["default"]["CONN_MAX_AGE"] = 60  # noqa: F405
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # noqa: F405
# Content credentials are signed with the configured certificate, never a development chain:
# without one, `check` (and so `migrate`) fails with provenance.E001 naming what to set.
EASEL_PROVENANCE_DEV_CERT = env.bool("EASEL_PROVENANCE_DEV_CERT", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

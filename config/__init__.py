"""Project wiring: settings, URLs, the Celery app. Apps never import this package."""

from .celery_app import app as celery_app

__all__ = ("celery_app",)

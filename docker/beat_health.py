"""Beat's health check (compose.yaml): beat has no port to probe, so look at what it does. The
generation reaper runs every 60 s; django-celery-beat records each send in the database (saved
every few minutes), so a last run older than ``STALE`` means beat is not sending.

    python docker/beat_health.py    # exit 0 when beat sent the reaper recently
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import django

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
django.setup()

from django.utils import timezone  # noqa: E402
from django_celery_beat.models import PeriodicTask  # noqa: E402

STALE = timedelta(minutes=10)
TASK = "generation-jobs-reap"


def main() -> int:
    last = PeriodicTask.objects.filter(name=TASK).values_list("last_run_at", flat=True).first()
    if last is None:
        print(f"beat has not sent {TASK} yet", file=sys.stderr)
        return 1
    age = timezone.now() - last
    if age > STALE:
        print(f"beat last sent {TASK} {age} ago", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

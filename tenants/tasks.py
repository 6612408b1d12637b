"""Platform tasks on the ``default`` queue: webhook delivery attempts, the sweeper that picks up
due retries (and attempts whose worker died), and the idempotency-key purge.

Beat runs ``webhook_deliveries_sweep_task`` every 30 seconds and ``idempotency_records_purge_task``
hourly (config/celery_app.py).
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .idempotency import idempotency_records_purge
from .webhooks import webhook_deliveries_due, webhook_delivery_attempt

# Retries due sooner than this are scheduled with a countdown right away; later ones wait for the
# sweeper (a long countdown would sit unacknowledged in a worker's memory for hours).
COUNTDOWN_LIMIT = timedelta(minutes=10)


@shared_task(name="tenants.tasks.webhook_delivery_attempt_task", ignore_result=True)
def webhook_delivery_attempt_task(delivery_id: int) -> None:
    delivery = webhook_delivery_attempt(delivery_id=delivery_id)
    if delivery is None or delivery.next_attempt_at is None:
        return
    wait = delivery.next_attempt_at - timezone.now()
    if wait <= COUNTDOWN_LIMIT:
        webhook_delivery_attempt_task.apply_async(
            args=[delivery_id], countdown=max(0.0, wait.total_seconds())
        )


@shared_task(name="tenants.tasks.webhook_deliveries_sweep_task", ignore_result=True)
def webhook_deliveries_sweep_task() -> int:
    due = webhook_deliveries_due()
    for delivery_id in due:
        webhook_delivery_attempt_task.delay(delivery_id)
    return len(due)


@shared_task(name="tenants.tasks.idempotency_records_purge_task", ignore_result=True)
def idempotency_records_purge_task() -> int:
    return idempotency_records_purge()

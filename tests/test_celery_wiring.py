"""Celery wiring: queues, routes and the reliability settings the architecture relies on."""

from __future__ import annotations

from django.conf import settings

from config.celery_app import app


def test_queues_are_declared_with_routes():
    names = {q.name for q in app.conf.task_queues}
    assert names == {"interactive", "bulk", "train", "default"}
    router = app.amqp.router
    assert router.route({}, "generation.tasks.run_generation_interactive")["queue"].name == (
        "interactive"
    )
    assert router.route({}, "generation.tasks.run_generation_bulk")["queue"].name == "bulk"
    assert router.route({}, "training.tasks.train_task")["queue"].name == "train"
    assert router.route({}, "tenants.tasks.anything")["queue"].name == "default"


def test_reliability_settings():
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    if settings.CELERY_BROKER_URL.startswith("redis"):
        assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit

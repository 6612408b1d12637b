"""Alias moves under concurrency: two people promoting a category's first version at the same
moment both get an answer (one promotion lands after the other), never a 500."""

from __future__ import annotations

import threading
from unittest import mock

import pytest
from django.db import connection

from models_registry import services
from models_registry.models import (
    Alias,
    AliasHistory,
    Category,
    ModelVersion,
)
from tests.conftest import require_service
from tests.studio.conftest import make_category


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_first_promotions_both_succeed(owner):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "concurrent writers need it (SQLite serializes them)")
    category = make_category(owner.org, versions=2)
    versions = list(category.versions.order_by("pk"))
    # Hold each promotion between "is there an alias row?" and writing it, until both are
    # there (or, once promotions are serialized, until the wait gives up): this is the window
    # in which two first promotions both decided to insert the row.
    both_looked = threading.Barrier(2)
    serving_family = services._serving_family

    def after_lookup(category: Category, row: Alias | None) -> str | None:
        try:
            both_looked.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass
        return serving_family(category, row)

    outcomes: dict[int, object] = {}

    def promote(version: ModelVersion) -> None:
        try:
            fresh = Category.objects.get(pk=category.pk)
            outcomes[version.pk] = services.alias_promote(
                actor=owner.principal, category=fresh, version=version
            )
        except Exception as exc:  # noqa: BLE001 - the test reports whatever a promotion raised
            outcomes[version.pk] = exc
        finally:
            connection.close()

    with mock.patch.object(services, "_serving_family", after_lookup):
        threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    errors = {pk: o for pk, o in outcomes.items() if isinstance(o, Exception)}
    assert errors == {}
    assert len(outcomes) == 2
    alias = Alias.objects.get(category=category, name="production")
    history = list(
        AliasHistory.objects.filter(category=category)
        .order_by("at", "id")
        .values_list("from_version_id", "to_version_id")
    )
    # One promotion created the alias, the other moved it on from there.
    assert len(history) == 2
    assert history[0][0] is None and history[1][0] == history[0][1]
    assert alias.version_id == history[1][1]

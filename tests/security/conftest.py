"""Security fixtures: organization A ("acme") with one object of every kind, and organization B
("globex") whose owner, with an every-scope API key and a studio session, attacks it.

Every name A's objects carry contains ``acme``, so a response to B that mentions ``acme`` (or one
of A's UUIDs) has leaked A's data. Nothing reaches a broker: the tests run in a transaction that
is rolled back, so ``on_commit`` enqueues never fire, and the direct enqueues are patched.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from PIL import Image

from catalog.imports import catalog_import
from catalog.models import Catalog, CatalogImport, CatalogRun, CatalogSchedule, Product
from catalog.runs import catalog_run_create
from catalog.schedules import catalog_schedule_create
from catalog.services import catalog_create
from generation.models import GeneratedImage, GenerationJob, JobStatus, PromptTemplate, Upload
from generation.services import generation_job_create
from generation.template_services import prompt_template_create
from generation.uploads import upload_create
from models_registry import services as registry_services
from models_registry.models import Category, ModelVersion
from tenants import services as tenant_services
from tenants import webhooks
from tenants.models import ApiKey, AuditEvent, Team, WebhookDelivery, WebhookEndpoint
from tenants.roles import Action
from tests.factories import Persona, make_image_row
from tests.registry.conftest import write_fake_lora
from training.models import TrainingJob, ValidationImage
from training.services import training_job_create

# Webhook URLs "resolve" to this public address: the tests need no DNS.
PUBLIC_ADDRESS = ipaddress.ip_address("93.184.216.34")
MARKER = "acme"


def png(size: tuple[int, int] = (48, 40), colour: tuple[int, int, int] = (0, 200, 220)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


@dataclass
class World:
    """A's objects (one of each kind) and B's few, as the tests name them."""

    owner: Persona  # of A
    outsider: Persona  # owner of B
    job: GenerationJob
    image: GeneratedImage
    upload: Upload
    template: PromptTemplate
    category: Category
    version: ModelVersion
    training: TrainingJob
    validation_image: ValidationImage
    catalog: Catalog
    product: Product
    catalog_import: CatalogImport
    run: CatalogRun
    schedule: CatalogSchedule
    api_key: ApiKey
    team: Team
    endpoint: WebhookEndpoint
    delivery: WebhookDelivery
    audit_event: AuditEvent
    # B's own, for the create and update routes.
    b_category: Category
    b_template: PromptTemplate
    b_catalog: Catalog
    b_schedule: CatalogSchedule

    def a_uuids(self) -> list[str]:
        ids = (self.job, self.image, self.upload, self.training, self.run)
        return [str(obj.pk) for obj in ids]

    def leaks(self, body: bytes | str) -> list[str]:
        """What in ``body`` belongs to A: the marker in its names, or one of its UUIDs."""
        text = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body).lower()
        return [s for s in [MARKER, *self.a_uuids()] if s in text]


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):  # type: ignore[no-untyped-def]
    # The walks send a few hundred requests from one key: they would meet the rate limits.
    for rate in ("PER_KEY", "WRITES_PER_KEY", "PER_ORG"):
        setattr(settings, f"EASEL_RATE_LIMIT_{rate}", "")


@pytest.fixture
def no_broker() -> Iterator[None]:
    """The direct enqueues, patched (on_commit ones never fire in a rolled-back test)."""
    with (
        mock.patch("generation.tasks.enqueue_generation"),
        mock.patch("catalog.tasks.enqueue_run_start"),
        mock.patch("catalog.tasks.enqueue_run_advance"),
        mock.patch("catalog.tasks.enqueue_export"),
        mock.patch("training.services.enqueue_training"),
    ):
        yield


@pytest.fixture
def public_dns() -> Iterator[None]:
    with mock.patch("tenants.net.resolve", return_value=[PUBLIC_ADDRESS]):
        yield


@pytest.fixture
def world(owner, outsider, tiny_base_model, tmp_path, no_broker, public_dns) -> World:  # type: ignore[no-untyped-def]
    a = owner.principal
    assert set(outsider.principal.actions) == set(Action.values)  # B holds every scope
    category = registry_services.category_create(
        actor=a, slug="acme-produce", name="Acme Produce", base_model=tiny_base_model
    )
    version = registry_services.model_version_register(
        actor=a,
        category=category,
        base=tiny_base_model,
        kind="lora",
        source_path=write_fake_lora(tmp_path / "acme.safetensors"),
        label="acme lora",
    )
    registry_services.alias_promote(actor=a, category=category, version=version)
    template = prompt_template_create(
        actor=a, application="acme-hero", text="an acme photo of {item}"
    )
    job = generation_job_create(
        actor=a, data={"prompt": "an acme secret prompt", "category": category.slug}
    )
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, progress=1.0)
    image = make_image_row(job)
    upload = upload_create(actor=a, file_name="acme-shot.png", data=png((64, 64)), kind="image")
    training = training_job_create(
        actor=a,
        category=category,
        files=[(f"acme-{i}.png", png(colour=(0, 200 - i, 220))) for i in range(3)],
        rare_token="sks",
        class_prompt="an acme star",
        params={"max_steps": 20},
    )
    validation_image = ValidationImage.objects.create(
        organization=a.org,
        job=training,
        model_version=version,
        step=10,
        prompt="an acme star",
        seed=1,
        storage_key=f"orgs/{a.org.pk}/trainings/{training.pk}/validation/0.png",
    )
    catalog = catalog_create(actor=a, slug="acme-spring", name="Acme spring")
    imported = catalog_import(
        actor=a,
        catalog=catalog,
        stream=io.BytesIO(b"sku,name,category\nACME-1,Acme Apple,acme-produce\n"),
        file_name="acme.csv",
    )
    run = catalog_run_create(actor=a, catalog=catalog, mode="all")
    schedule = catalog_schedule_create(actor=a, catalog=catalog, interval_minutes=60)
    api_key, _raw = tenant_services.api_key_create(
        actor=a, team=owner.team, name="acme spare key", scopes=[Action.VIEW]
    )
    endpoint, _secret = webhooks.webhook_endpoint_create(
        actor=a, url="https://acme-hooks.example.com/easel", events=["job.succeeded"]
    )
    delivery = webhooks.webhook_endpoint_ping(actor=a, endpoint=endpoint)

    b = outsider.principal
    b_category = registry_services.category_create(
        actor=b, slug="globex-shoes", name="Globex shoes", base_model=tiny_base_model
    )
    b_template = prompt_template_create(actor=b, application="globex-hero", text="a {item}")
    b_catalog = catalog_create(actor=b, slug="globex-autumn")
    b_schedule = catalog_schedule_create(actor=b, catalog=b_catalog, interval_minutes=60)
    return World(
        owner=owner,
        outsider=outsider,
        job=job,
        image=image,
        upload=upload,
        template=template,
        category=category,
        version=version,
        training=training,
        validation_image=validation_image,
        catalog=catalog,
        product=Product.objects.get(catalog=catalog),
        catalog_import=imported,
        run=run,
        schedule=schedule,
        api_key=api_key,
        team=owner.team,
        endpoint=endpoint,
        delivery=delivery,
        audit_event=AuditEvent.objects.filter(organization=a.org).latest("at"),
        b_category=b_category,
        b_template=b_template,
        b_catalog=b_catalog,
        b_schedule=b_schedule,
    )


def api_error(response: Any) -> dict[str, Any]:
    return response.json()["error"]

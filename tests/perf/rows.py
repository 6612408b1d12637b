"""Rows for the query-count tests, made straight through the ORM (no worker, no storage): one
organization with everything its list pages show, each row with the related objects a page
reads — a job's images, attempts, review and model version, a run's items and their jobs, a
version's aliases, a schedule's beat row. ``World.add_*`` adds ``n`` more rows each call, so a
page can be read at one size and again at a larger one."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from catalog.models import (
    Catalog,
    CatalogImport,
    CatalogRun,
    ImportRejection,
    ItemStatus,
    Product,
    RunItem,
    RunStatus,
)
from catalog.schedules import catalog_schedule_create
from generation.models import (
    GeneratedImage,
    GenerationAttempt,
    GenerationJob,
    ImageReview,
    JobStatus,
    PromptTemplate,
    PublishedImage,
    ReviewStatus,
    Upload,
    UploadKind,
)
from models_registry.models import (
    Alias,
    AliasHistory,
    AliasName,
    BaseModel,
    BuildStatus,
    Category,
    ModelVersion,
    VersionKind,
)
from tenants.audit import AuditVerb
from tenants.models import (
    ApiKey,
    AuditEvent,
    Quota,
    Team,
    UsageRecord,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from tenants.quotas import day_start
from tests.factories import Persona
from training.models import TrainingImage, TrainingJob, TrainingStatus, ValidationImage

JOB_PARAMS = {"prompt": "a red mug", "width": 64, "height": 64, "steps": 4, "seed": 7}


@dataclass
class World:
    """Organization A's owner and the shared rows every list hangs off."""

    owner: Persona
    base: BaseModel
    category: Category
    version: ModelVersion
    template: PromptTemplate
    catalog: Catalog
    numbers: itertools.count = field(default_factory=lambda: itertools.count(1))
    parents: dict[str, Any] = field(default_factory=dict)

    @property
    def org(self) -> Any:
        return self.owner.org

    def next(self) -> int:
        return next(self.numbers)

    def parent(self, name: str, make: Any) -> Any:
        """One parent row per nested list (a run's items, an endpoint's deliveries), made once."""
        if name not in self.parents:
            self.parents[name] = make()
        return self.parents[name]

    # --- generation ------------------------------------------------------------------------

    def job(
        self, *, status: str = JobStatus.SUCCEEDED, images: int = 2, reviewed: bool = False
    ) -> GenerationJob:
        """A job with every relation a list shows: template, category, version, creator,
        ``images`` result images from two attempts (the first failed the gate), attempts."""
        job = GenerationJob.objects.create(
            organization=self.org,
            team=self.owner.team,
            created_by=self.owner.user,
            template=self.template,
            template_version=self.template.version,
            category=self.category,
            base_model=self.base,
            model_version=self.version,
            params={**JOB_PARAMS, "template_application": self.template.application},
            prompt="a red mug",
            num_images=images,
            batch_key="perf",
            status=status,
            attempts=2,
            error_message="" if status == JobStatus.SUCCEEDED else "it broke",
        )
        for attempt in (1, 2):
            GenerationAttempt.objects.create(
                job=job, number=attempt, prompt="a red mug", params={}, passed=attempt == 2
            )
        for index in range(images):
            self.job_images(job, index, reviewed=reviewed)
        return job

    def job_images(self, job: GenerationJob, index: int, *, reviewed: bool = False) -> None:
        """Image ``index`` of ``job`` from two attempts: the first failed the gate, the second
        passed and is the result (approved when ``reviewed``)."""
        for attempt in (1, 2):
            key = f"orgs/{self.org.pk}/generations/{job.pk}/{index}-{attempt}"
            image = GeneratedImage.objects.create(
                organization=self.org,
                job=job,
                index=index,
                attempt=attempt,
                seed=7 + index,
                storage_key=f"{key}.png",
                thumbnail_key=f"{key}-thumb.webp",
                sha256="0" * 64,
                width=64,
                height=64,
                scores={"passed": attempt == 2, "score": 0.5 + attempt / 10, "reasons": []},
                is_result=attempt == 2,
            )
            if reviewed and attempt == 2:
                ImageReview.objects.create(
                    organization=self.org,
                    image=image,
                    status=ReviewStatus.APPROVED,
                    reviewer=self.owner.user,
                    gate_passed=True,
                )

    def add_jobs(self, n: int, **kwargs: Any) -> None:
        for _ in range(n):
            self.job(**kwargs)

    def add_published(self, n: int) -> None:
        for _ in range(n):
            image = self.job(reviewed=True, images=1).images.get(is_result=True)
            category = Category.objects.create(
                organization=self.org, slug=f"pub-{self.next()}", name="Published"
            )
            PublishedImage.objects.create(
                organization=self.org,
                category=category,
                image=image,
                published_by=self.owner.user,
            )

    def template_version(self, application: str, version: int) -> PromptTemplate:
        return PromptTemplate.objects.create(
            organization=self.org,
            application=application,
            version=version,
            text="a {colour} mug",
            created_by=self.owner.user,
        )

    def add_templates(self, n: int) -> None:
        for _ in range(n):
            application = f"app-{self.next()}"
            for version in (1, 2):
                self.template_version(application, version)

    def add_template_versions(self, n: int) -> str:
        application = self.parent("versions", lambda: f"history-{self.next()}")
        first = PromptTemplate.objects.filter(organization=self.org, application=application)
        start = first.count() + 1
        for version in range(start, start + n):
            self.template_version(application, version)
        return application

    # --- registry --------------------------------------------------------------------------

    def model_version(self, category: Category, *, parent: ModelVersion | None = None) -> Any:
        return ModelVersion.objects.create(
            organization=self.org,
            category=category,
            base=self.base,
            kind=VersionKind.LORA,
            label=f"v{self.next()}",
            artifact_uri="test://perf",
            sha256="1" * 64,
            parent=parent,
            created_by=self.owner.user,
        )

    def add_categories(self, n: int) -> None:
        for _ in range(n):
            category = Category.objects.create(
                organization=self.org,
                slug=f"cat-{self.next()}",
                name="Category",
                base_model=self.base,
            )
            production = self.model_version(category)
            staging = self.model_version(category, parent=production)
            Alias.objects.create(category=category, name=AliasName.PRODUCTION, version=production)
            Alias.objects.create(category=category, name=AliasName.STAGING, version=staging)

    def add_versions(self, n: int, *, category: Category | None = None) -> None:
        category = category or self.category
        for _ in range(n):
            version = self.model_version(category, parent=self.version)
            AliasHistory.objects.create(
                organization=self.org,
                category=category,
                alias_name=AliasName.STAGING,
                action="promote",
                from_version=self.version,
                to_version=version,
                actor_user=self.owner.user,
            )

    def add_base_models(self, n: int) -> None:
        for _ in range(n):
            BaseModel.objects.create(
                name=f"base-{self.next()}", family="tiny", status=BuildStatus.READY
            )

    # --- training --------------------------------------------------------------------------

    def training(self, *, images: int = 3) -> TrainingJob:
        job = TrainingJob.objects.create(
            organization=self.org,
            team=self.owner.team,
            created_by=self.owner.user,
            category=self.category,
            base_model=self.base,
            rare_token="sks",
            instance_prompt="sks mug",
            class_prompt="a mug",
            params={},
            status=TrainingStatus.SUCCEEDED,
            output_version=self.version,
            step=10,
            total_steps=10,
        )
        for index in range(images):
            self.training_image(job, index)
        return job

    def training_image(self, job: TrainingJob, index: int) -> None:
        """Photo ``index`` and, for its prompt, the base's and the candidate's validation image."""
        TrainingImage.objects.create(
            organization=self.org,
            job=job,
            index=index,
            file_name=f"{index}.png",
            storage_key=f"orgs/{self.org.pk}/training/{job.pk}/{index}.png",
            sha256="2" * 64,
            width=64,
            height=64,
            size_bytes=100,
        )
        for version in (None, self.version):
            ValidationImage.objects.create(
                organization=self.org,
                job=job,
                model_version=version,
                step=10,
                prompt=f"prompt {index}",
                seed=index,
                storage_key=f"orgs/{self.org.pk}/training/{job.pk}/v{index}.png",
            )

    def add_trainings(self, n: int) -> None:
        for _ in range(n):
            self.training()

    def add_uploads(self, n: int) -> None:
        for _ in range(n):
            number = self.next()
            Upload.objects.create(
                organization=self.org,
                kind=UploadKind.IMAGE if number % 2 else UploadKind.MASK,
                file_name=f"shot-{number}.png",
                storage_key=f"orgs/{self.org.pk}/uploads/{number}.png",
                sha256="c" * 64,
                size_bytes=100,
                width=64,
                height=64,
            )

    # --- catalogs --------------------------------------------------------------------------

    def product(self, catalog: Catalog, *, published: bool = True) -> Product:
        image = self.job(images=1).images.get(is_result=True) if published else None
        number = self.next()
        return Product.objects.create(
            organization=self.org,
            catalog=catalog,
            sku=f"SKU-{number:05d}",
            name=f"Mug {number}",
            category=self.category,
            template=self.template.application,
            content_hash="a" * 64,
            published_image=image,
            published_hash="b" * 64 if image else "",
            published_at=timezone.now() if image else None,
        )

    def add_catalogs(self, n: int) -> None:
        for _ in range(n):
            catalog = Catalog.objects.create(
                organization=self.org, slug=f"cat-{self.next()}", name="Catalog"
            )
            self.product(catalog, published=False)
            self.run(catalog, items=2)

    def add_products(self, n: int) -> None:
        for _ in range(n):
            self.product(self.catalog)

    def run(self, catalog: Catalog, *, items: int = 3) -> CatalogRun:
        """A running run with ``items`` items; every other one was started by a schedule."""
        scheduled = self.next() % 2 == 0
        run = CatalogRun.objects.create(
            organization=self.org,
            catalog=catalog,
            mode="all",
            status=RunStatus.RUNNING,
            team=self.owner.team,
            created_by=None if scheduled else self.owner.user,
            started_at=timezone.now() - timedelta(minutes=5),
            schedule=self.parent("run schedule", self.hourly) if scheduled else None,
        )
        self.add_items(run, items)
        return run

    def hourly(self) -> Any:
        return catalog_schedule_create(
            actor=self.owner.principal, catalog=self.catalog, interval_minutes=60
        )

    def add_items(self, run: CatalogRun, n: int) -> None:
        statuses = itertools.cycle([ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.QUEUED])
        for _ in range(n):
            status = next(statuses)
            job = self.job(images=1) if status != ItemStatus.QUEUED else None
            RunItem.objects.create(
                run=run,
                organization=self.org,
                product=self.product(run.catalog, published=False),
                status=status,
                job=job,
                error="no luck" if status == ItemStatus.FAILED else "",
                submitted_at=timezone.now() if job else None,
            )
        CatalogRun.objects.filter(pk=run.pk).update(items_total=run.items.count())

    def add_runs(self, n: int) -> None:
        for _ in range(n):
            self.run(self.catalog, items=3)

    def add_run_items(self, n: int) -> CatalogRun:
        run = self.parent("items", lambda: self.run(self.catalog, items=0))
        self.add_items(run, n)
        return run

    def add_schedules(self, n: int) -> None:
        for i in range(n):
            every = {"cron": "0 3 * * *"} if i % 2 else {"interval_minutes": 30 + i}
            catalog_schedule_create(actor=self.owner.principal, catalog=self.catalog, **every)

    def add_rejections(self, n: int) -> CatalogImport:
        record = self.parent(
            "import",
            lambda: CatalogImport.objects.create(
                organization=self.org, catalog=self.catalog, file_name="p.csv", file_format="csv"
            ),
        )
        for _ in range(n):
            ImportRejection.objects.create(catalog_import=record, line=self.next(), reason="bad")
        CatalogImport.objects.filter(pk=record.pk).update(rows_rejected=record.rejections.count())
        return record

    def add_imports(self, n: int) -> None:
        for _ in range(n):
            record = CatalogImport.objects.create(
                organization=self.org,
                catalog=self.catalog,
                file_name="p.csv",
                file_format="csv",
                created_by=self.owner.user,
            )
            ImportRejection.objects.create(catalog_import=record, line=2, reason="bad")

    # --- tenancy ---------------------------------------------------------------------------

    def team(self) -> Team:
        number = self.next()
        return Team.objects.create(organization=self.org, name=f"Team {number}", slug=f"t{number}")

    def add_teams(self, n: int) -> None:
        for _ in range(n):
            team = self.team()
            Quota.objects.create(organization=self.org, team=team, images_per_day=100)
            UsageRecord.objects.create(
                organization=self.org,
                team=team,
                kind=UsageRecord.Kind.IMAGES,
                amount=2,
                reference=f"perf:{team.pk}",
                period_start=day_start(timezone.now()),
            )

    def add_api_keys(self, n: int) -> None:
        for _ in range(n):
            number = self.next()
            ApiKey.objects.create(
                organization=self.org,
                team=self.team(),
                name=f"key {number}",
                prefix=f"p{number:07d}",
                secret_hash="3" * 64,
                scopes=["view"],
                created_by=self.owner.user,
            )

    def add_audit_events(self, n: int) -> None:
        key = ApiKey.objects.filter(organization=self.org).first()
        for i in range(n):
            AuditEvent.objects.create(
                organization=self.org,
                actor_user=self.owner.user if i % 2 else None,
                actor_api_key=None if i % 2 else key,
                verb=AuditVerb.TEAM_CREATED,
                object_type="team",
                object_id=str(i),
            )

    def endpoint(self, team: Team | None = None) -> WebhookEndpoint:
        return WebhookEndpoint.objects.create(
            organization=self.org,
            team=team,
            url="https://hooks.example.com/easel",
            secret="whsec_perf",
            events=["generation.succeeded"],
            created_by=self.owner.user,
        )

    def add_endpoints(self, n: int) -> None:
        for i in range(n):
            self.endpoint(self.team() if i % 2 else None)

    def add_deliveries(self, n: int) -> WebhookEndpoint:
        endpoint = self.parent("endpoint", self.endpoint)
        for _ in range(n):
            delivery = WebhookDelivery.objects.create(
                organization=self.org, endpoint=endpoint, event="ping", payload={"type": "ping"}
            )
            for number in (1, 2):
                WebhookDeliveryAttempt.objects.create(
                    delivery=delivery, number=number, status_code=500
                )
        return endpoint

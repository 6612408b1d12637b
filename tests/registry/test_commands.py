"""Management commands and the built-in model builds: build_tiny_model, register_model,
build_shapes_model / build_builtin_model_task, and the demo seed."""

from __future__ import annotations

import shutil
import uuid
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from models_registry import demo
from models_registry.artifacts import materialize_base
from models_registry.builtin import build_shapes_model
from models_registry.models import BaseModel, BuildStatus, Category, ModelVersion
from models_registry.tasks import build_builtin_model_task
from tenants.models import AuditEvent, Organization

from ..conftest import require_service
from ..factories import make_org
from .conftest import QUICK_SHAPES

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def pipeline_copy(tiny_pipeline_dir, tmp_path) -> Path:
    target = tmp_path / "my-pipeline"
    shutil.copytree(tiny_pipeline_dir, target)
    return target


def test_build_tiny_model_registers_a_materializable_tiny_base(tmp_path, settings):
    settings.EASEL_MODEL_CACHE_DIR = tmp_path / "cache"
    first = _run("build_tiny_model")
    second = _run("build_tiny_model")
    assert "Base model 'tiny' is ready" in first and "Base model 'tiny' is ready" in second
    base = BaseModel.objects.get(name="tiny")
    assert base.status == BuildStatus.READY and base.default_params["native_size"] == 64
    assert (materialize_base(base) / "model_index.json").is_file()


def test_register_model_checks_loads_and_registers_a_pipeline_folder(pipeline_copy):
    out = _run(
        "register_model", "--family", "tiny", "--name", "tiny-copy", "--path", str(pipeline_copy)
    )
    assert "Registered base model 'tiny-copy'" in out
    base = BaseModel.objects.get(name="tiny-copy")
    assert base.artifact_uri.startswith("storage:artifacts/sha256/") and base.size_bytes > 0


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda p: (p / "model_index.json").unlink(), "model_index.json is missing"),
        (lambda p: shutil.rmtree(p / "vae"), "vae/ is missing"),
        (
            lambda p: (p / "unet" / "diffusion_pytorch_model.safetensors").unlink(),
            "unet/ has no weights",
        ),
        (lambda p: (p / "text_encoder" / "config.json").unlink(), "text_encoder/config.json"),
    ],
)
def test_register_model_names_what_a_bad_folder_lacks(pipeline_copy, breakage, expected):
    breakage(pipeline_copy)
    with pytest.raises(CommandError, match=expected):
        _run("register_model", "--family", "tiny", "--name", "broken", "--path", str(pipeline_copy))
    assert not BaseModel.objects.filter(name="broken").exists()


def test_register_model_refuses_a_pipeline_of_another_family(pipeline_copy):
    with pytest.raises(CommandError, match="family 'sdxl' needs StableDiffusionXLPipeline"):
        _run("register_model", "--family", "sdxl", "--path", str(pipeline_copy))


def test_register_model_adds_a_lora_version_to_a_category(owner, tiny_base_model, lora_factory):
    Category.objects.create(organization=owner.org, slug="produce", name="Produce")
    out = _run(
        "register_model", "--kind", "lora", "--base", "tiny", "--org", owner.org.slug,
        "--category", "produce", "--path", str(lora_factory(seed=5)), "--label", "first",
    )  # fmt: skip
    version = ModelVersion.objects.get(category__slug="produce")
    assert f"Registered model version {version.pk}" in out
    assert (version.kind, version.status, version.label) == ("lora", "candidate", "first")
    assert AuditEvent.objects.filter(verb="model_version.registered", actor_user=None).exists()


def test_register_model_refuses_a_full_checkpoint_given_as_lora(
    owner, tiny_base_model, tiny_pipeline_dir
):
    Category.objects.create(organization=owner.org, slug="produce", name="Produce")
    weights = tiny_pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(CommandError, match="holds no LoRA tensors"):
        _run(
            "register_model", "--kind", "lora", "--base", "tiny", "--org", owner.org.slug,
            "--category", "produce", "--path", str(weights),
        )  # fmt: skip


@pytest.mark.integration
def test_register_model_from_an_s3_prefix(tiny_pipeline_dir):
    if settings.EASEL_STORAGE != "s3" or not settings.AWS_S3_ENDPOINT_URL:
        require_service("S3", "EASEL_STORAGE is not 's3' with AWS_S3_ENDPOINT_URL set")
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
        region_name=settings.AWS_S3_REGION_NAME,
    )
    bucket, prefix = settings.AWS_STORAGE_BUCKET_NAME, f"tests/incoming/{uuid.uuid4().hex}"
    keys = []
    for path in tiny_pipeline_dir.rglob("*"):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(tiny_pipeline_dir).as_posix()}"
            client.upload_file(str(path), bucket, key)
            keys.append(key)
    try:
        out = _run(
            "register_model", "--family", "tiny", "--name", "tiny-from-s3",
            "--uri", f"s3://{bucket}/{prefix}", "--no-load-check",
        )  # fmt: skip
    finally:
        for key in keys:
            client.delete_object(Bucket=bucket, Key=key)
    assert "Registered base model 'tiny-from-s3'" in out
    _run("register_model", "--family", "tiny", "--name", "tiny-local", "--path",
         str(tiny_pipeline_dir), "--no-load-check")  # fmt: skip
    from_s3, local = (BaseModel.objects.get(name=n).sha256 for n in ("tiny-from-s3", "tiny-local"))
    assert from_s3 == local, "the same files must pack to the same artifact"


@pytest.fixture
def build_cache(settings, tmp_path) -> Path:
    settings.EASEL_BUILD_CACHE_DIR = tmp_path / "builds"
    return settings.EASEL_BUILD_CACHE_DIR


def test_shapes_build_reports_progress_registers_and_switches_the_demo_org(
    build_cache, tiny_base_model
):
    demo_org, _owner, _team = make_org("demo")
    other_org, _o, _t = make_org("other")
    Category.objects.create(
        organization=demo_org, slug="produce", name="P", base_model=tiny_base_model
    )
    seen: list[tuple[str, int, int]] = []

    def spy(stage, step, total, metrics):  # type: ignore[no-untyped-def]
        row = BaseModel.objects.filter(name="shapes").values("status", "build_progress").get()
        assert row["status"] == BuildStatus.BUILDING
        seen.append((row["build_progress"]["stage"], row["build_progress"]["step"], total))

    base = build_shapes_model(overrides=QUICK_SHAPES, echo=spy)
    assert {stage for stage, *_ in seen} >= {"data", "vae", "unet", "save"}
    assert ("unet", 3, 3) in seen
    assert base.status == BuildStatus.READY and base.family == "tiny"
    assert base.build_progress["stage"] == "ready" and "build_seconds" in base.build_progress
    assert (materialize_base(base) / "build.json").is_file()
    demo_org.refresh_from_db()
    other_org.refresh_from_db()
    assert demo_org.default_model == "shapes" and other_org.default_model == "tiny"
    assert Category.objects.get(organization=demo_org).base_model == base
    assert AuditEvent.objects.filter(
        organization=demo_org, verb="organization.default_model_changed"
    ).exists()


def test_shapes_task_reuses_the_cached_build_and_a_failure_is_recorded(build_cache):
    first = build_builtin_model_task.apply(args=("shapes", QUICK_SHAPES)).get()
    built = list(build_cache.iterdir())
    second = build_builtin_model_task.apply(args=("shapes", QUICK_SHAPES)).get()
    assert first == second and list(build_cache.iterdir()) == built

    BaseModel.objects.filter(name="shapes").update(status=BuildStatus.FAILED)
    with pytest.raises(ValueError, match="Unknown shapes settings"):
        build_shapes_model(overrides={"no_such_setting": 1})
    row = BaseModel.objects.get(name="shapes")
    assert row.status == BuildStatus.FAILED
    assert "Unknown shapes settings" in row.build_progress["error"]


def test_build_shapes_model_command_prints_progress(build_cache):
    args = [f"--set={k}={v}" for k, v in QUICK_SHAPES.items()]
    out = _run("build_shapes_model", *args)
    assert "unet 3/3" in out and "Base model 'shapes' is ready" in out


def test_seed_registry_queues_only_the_builds_that_are_missing(
    owner, django_capture_on_commit_callbacks
):
    BaseModel.objects.create(name="shapes", family="tiny", status=BuildStatus.READY)
    with (
        mock.patch.object(build_builtin_model_task, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        demo.seed_registry(owner.org, owner.principal)
    # e.g. a new engine version changed the grounded build's cache key, not the base's
    assert [c.args for c in delay.call_args_list] == [("shapes-gligen",)]


def test_seed_registry_creates_categories_and_queues_the_shapes_build_once(
    owner, django_capture_on_commit_callbacks
):
    with mock.patch.object(build_builtin_model_task, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            categories = demo.seed_registry(owner.org, owner.principal)
        with django_capture_on_commit_callbacks(execute=True):
            demo.seed_registry(owner.org, owner.principal)
    assert [c.slug for c in categories] == ["produce", "bakery", "meat"]
    assert all(c.trigger_token and c.base_model.name == "tiny" for c in categories)
    assert Category.objects.filter(organization=owner.org).count() == 3
    # shapes, then its grounded variant built from it; once, however often the seed runs.
    assert [c.args for c in delay.call_args_list] == [("shapes",), ("shapes-gligen",)]
    assert BaseModel.objects.get(name="tiny-gligen").grounded
    shapes = BaseModel.objects.get(name="shapes")
    assert shapes.status == BuildStatus.BUILDING and shapes.build_progress["stage"] == "queued"
    assert Organization.objects.get(pk=owner.org.pk).default_model == "tiny"

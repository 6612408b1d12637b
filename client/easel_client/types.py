"""Typed views of the API's responses.

Each class names the fields most callers use, typed as the OpenAPI schema (``/api/schema/``)
declares them; ``SCHEMA`` is the schema component it mirrors, and the tests check every field
against it. Timestamps are timezone-aware ``datetime``. ``raw`` keeps the whole response body,
so a field the class does not name is still one ``obj.raw["..."]`` away.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")

GENERATION_FINISHED = ("succeeded", "failed", "failed_quality", "canceled")
TRAINING_FINISHED = ("succeeded", "failed", "canceled")
RUN_FINISHED = ("completed", "canceled")


def from_api(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a response body; absent fields are None, unknown ones stay in ``raw``."""
    values = {name: _convert(hint, data.get(name)) for name, hint in _fields(cls)}
    return cls(raw=dict(data), **values)


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.name != "raw")


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_convert(item, v) for v in value]
    if hint is datetime and isinstance(value, str):
        return datetime.fromisoformat(value)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_api(hint, value)  # type: ignore[arg-type]
    return value


@dataclass(frozen=True)
class Image:
    SCHEMA: ClassVar[str] = "Image"
    id: str
    job: str
    index: int
    seed: int
    width: int
    height: int
    sha256: str
    size_bytes: int
    url: str | None
    thumbnail_url: str | None
    url_expires_at: datetime | None
    created_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Upload:
    """An uploaded image to vary (``kind`` "image") or an inpainting mask ("mask")."""

    SCHEMA: ClassVar[str] = "Upload"
    id: str
    kind: str
    file_name: str
    width: int
    height: int
    sha256: str
    size_bytes: int
    created_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Generation:
    """A generation job. Statuses: pending, running, judging, then succeeded, failed,
    failed_quality or canceled."""

    SCHEMA: ClassVar[str] = "GenerationJob"
    id: str
    status: str
    priority: str
    progress: float
    model: str
    prompt: str
    num_images: int
    attempts: int
    error: dict[str, str] | None
    images: list[Image]
    params: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in GENERATION_FINISHED

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class Training:
    """A fine-tuning job: pending, running, then succeeded, failed or canceled."""

    SCHEMA: ClassVar[str] = "TrainingJob"
    id: str
    status: str
    category: str
    base_model: str
    mode: str
    rare_token: str
    step: int
    total_steps: int
    progress: float
    error: dict[str, str] | None
    output_version: int | None
    log: str
    created_at: datetime
    finished_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in TRAINING_FINISHED

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class Category:
    SCHEMA: ClassVar[str] = "Category"
    id: int
    slug: str
    name: str
    trigger_token: str
    base_model: str | None
    aliases: dict[str, Any]
    created_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class ModelVersion:
    SCHEMA: ClassVar[str] = "ModelVersion"
    id: int
    category: str
    base: str
    family: str
    kind: str
    label: str
    status: str
    aliases: list[str]
    sha256: str
    created_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Template:
    SCHEMA: ClassVar[str] = "PromptTemplate"
    id: int
    application: str
    version: int
    text: str
    variables: list[str]
    style: str
    negative_prompt: str
    default_params: dict[str, Any]
    created_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Catalog:
    SCHEMA: ClassVar[str] = "Catalog"
    slug: str
    name: str
    default_template: str
    product_count: int
    created_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Rejection:
    SCHEMA: ClassVar[str] = "Rejection"
    line: int
    sku: str
    reason: str
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class CatalogImport:
    SCHEMA: ClassVar[str] = "CatalogImport"
    id: int
    catalog: str
    file_name: str
    rows_total: int
    rows_created: int
    rows_updated: int
    rows_unchanged: int
    rows_rejected: int
    rejections: list[Rejection]
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class RunProgress:
    SCHEMA: ClassVar[str] = "Progress"
    counts: dict[str, int]
    total: int
    finished: int
    eta_seconds: float | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class CatalogRun:
    """A catalog run: pending, running, paused, then completed or canceled. Its export
    (``export_status``) is built after it completes: building, then ready or failed."""

    SCHEMA: ClassVar[str] = "CatalogRun"
    id: str
    catalog: str
    mode: str
    status: str
    paused_reason: str
    items_total: int
    progress: RunProgress
    export_status: str
    export_error: str
    created_at: datetime
    finished_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in RUN_FINISHED


@dataclass(frozen=True)
class RunItem:
    SCHEMA: ClassVar[str] = "RunItem"
    sku: str
    status: str
    job: str | None
    error: str
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Product:
    SCHEMA: ClassVar[str] = "Product"
    sku: str
    name: str
    category: str
    published_image: str | None
    changed: bool
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Export:
    SCHEMA: ClassVar[str] = "Export"
    manifest_url: str
    zip_url: str
    expires_at: datetime
    exported_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class UsageBlock:
    SCHEMA: ClassVar[str] = "UsageBlock"
    used: float
    limit: float | None
    remaining: float | None
    resets_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class UsageScope:
    SCHEMA: ClassVar[str] = "UsageScope"
    id: int
    slug: str
    images_today: UsageBlock
    gpu_seconds_this_month: UsageBlock
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Usage:
    SCHEMA: ClassVar[str] = "Usage"
    organization: UsageScope
    teams: list[UsageScope]
    raw: dict[str, Any] = field(repr=False, compare=False)


ALL_TYPES: tuple[type, ...] = (
    Image,
    Upload,
    Generation,
    Training,
    Category,
    ModelVersion,
    Template,
    Catalog,
    Rejection,
    CatalogImport,
    RunProgress,
    CatalogRun,
    RunItem,
    Product,
    Export,
    UsageBlock,
    UsageScope,
    Usage,
)

"""Catalog imports: a CSV or JSONL file streamed row by row, each row checked, the good ones
upserted by SKU in chunks, every rejected one recorded with its line and reason.

The file is read as bytes, one physical line at a time, so a 100,000-row file never sits in
memory whole (Django spools large uploads to a temporary file); what is kept while reading is
one chunk of rows and the set of SKUs seen (to name a repeated one). A line that is not UTF-8
rejects only its row. The whole import is one transaction under a lock on the catalog: two
imports of one catalog never interleave, and a crash part-way leaves the catalog as it was.

CSV: a header row with ``sku``, ``name``, ``category`` and optionally ``template`` and
``attributes`` (a JSON object); every other column is an attribute. JSONL: one object per line
with the same keys; keys other than these are attributes. Attributes fill the template's
variables (``name`` and ``sku`` are available as variables too).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from generation.protocol import control_characters
from generation.template_selectors import prompt_template_latest_list
from generation.templates import TemplateSyntaxError, template_variables
from models_registry.models import Category
from tenants.audit import AuditVerb
from tenants.errors import ApplicationError, TooLarge
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import audit_event_record, require

from .models import (
    MAX_NAME_CHARS,
    MAX_SKU_CHARS,
    Catalog,
    CatalogImport,
    ImportRejection,
    Product,
)

FORMATS = ("csv", "jsonl")
RESERVED = ("sku", "name", "category", "template", "attributes")
REQUIRED = ("sku", "name", "category")
CHUNK_ROWS = 1000
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_NAME_CHARS = 64
# Variables a row offers its template besides its attributes.
ROW_VARIABLES = ("name", "sku")


class ImportFileError(ApplicationError):
    """The file as a whole cannot be read (no header, a required column missing, unknown
    format): nothing was imported."""

    code = "invalid_file"


@dataclass
class RawRow:
    line: int
    values: dict[str, Any]
    error: str = ""


def format_for(file_name: str, given: str = "") -> str:
    """The file's format: ``given`` if set, else from the name's extension."""
    fmt = (given or "").strip().lower()
    if not fmt:
        name = file_name.lower()
        if name.endswith(".csv"):
            fmt = "csv"
        elif name.endswith((".jsonl", ".ndjson")):
            fmt = "jsonl"
    if fmt not in FORMATS:
        raise ImportFileError(
            f"Cannot tell the format of '{file_name}': name it .csv or .jsonl, or say "
            f"format=csv|jsonl.",
            fields={"format": "Use csv or jsonl."},
        )
    return fmt


def content_hash(*, name: str, category: str, template: str, attributes: dict[str, str]) -> str:
    """A stable hash of what a product's image depends on."""
    canonical = json.dumps(
        {"name": name, "category": category, "template": template, "attributes": attributes},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- reading ----------------------------------------------------------------------------------


def _lines(stream: IO[bytes], bad_lines: set[int]) -> Iterator[str]:
    """Decoded physical lines; the numbers of lines that are not UTF-8 go into ``bad_lines``."""
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad_lines.add(number)
            text = raw.decode("utf-8", errors="replace")
        if number == 1:
            text = text.removeprefix("\ufeff")
        yield text


def _header(cells: list[str]) -> list[str]:
    names = [c.strip().lower() for c in cells]
    seen: set[str] = set()
    for name in names:
        if not name:
            raise ImportFileError("The header has an empty column name.")
        if name in seen:
            raise ImportFileError(f"The header names column '{name}' twice.")
        seen.add(name)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ImportFileError(
            f"The header lacks the column(s) {', '.join(missing)}; a catalog file needs "
            f"{', '.join(REQUIRED)} (and may have template, attributes and attribute columns). "
            f"It has: {', '.join(ascii(n)[1:-1] for n in names)}."
        )
    return names


def read_csv(stream: IO[bytes]) -> Iterator[RawRow]:
    bad: set[int] = set()
    reader = csv.reader(_lines(stream, bad), strict=True)
    limit = int(settings.EASEL_CATALOG_MAX_CELL_CHARS)
    csv.field_size_limit(max(limit * 4, 131072))  # larger cells are rejected by name below
    header: list[str] | None = None
    last = 0
    while True:
        start = last + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            last = reader.line_num
            if header is None:
                raise ImportFileError(f"The header row is not valid CSV: {exc}.") from None
            yield RawRow(line=start, values={}, error=f"not valid CSV: {exc}")
            continue
        last = reader.line_num
        if header is None:
            if start in bad:
                raise ImportFileError("The header row is not UTF-8 text.")
            if not cells:
                raise ImportFileError("The file is empty: it needs a header row.")
            header = _header(cells)
            continue
        if not cells or all(not c.strip() for c in cells):
            continue  # blank line
        if any(n in bad for n in range(start, last + 1)):
            yield RawRow(line=start, values={}, error="bad encoding: the row is not UTF-8 text")
            continue
        if len(cells) > len(header):
            yield RawRow(
                line=start,
                values={},
                error=f"the row has {len(cells)} cells but the header has {len(header)} columns",
            )
            continue
        values: dict[str, Any] = dict(zip(header, cells, strict=False))
        yield RawRow(line=start, values=values)
    if header is None:
        raise ImportFileError("The file is empty: it needs a header row.")


def read_jsonl(stream: IO[bytes]) -> Iterator[RawRow]:
    bad: set[int] = set()
    for number, text in enumerate(_lines(stream, bad), start=1):
        if not text.strip():
            continue
        if number in bad:
            yield RawRow(line=number, values={}, error="bad encoding: the line is not UTF-8 text")
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield RawRow(line=number, values={}, error=f"not valid JSON: {exc.msg}")
            continue
        except RecursionError:
            yield RawRow(line=number, values={}, error="not valid JSON: nested too deeply")
            continue
        if not isinstance(value, dict):
            yield RawRow(line=number, values={}, error="the line is not a JSON object")
            continue
        yield RawRow(line=number, values=value)


# --- checking ---------------------------------------------------------------------------------


@dataclass
class _Context:
    org_id: int
    catalog: Catalog
    categories: dict[str, Category]
    # application → the variables of its latest version (None: no such template).
    templates: dict[str, list[str] | None] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # sku → line it first appeared on

    def variables_of(self, application: str) -> list[str] | None:
        if application not in self.templates:
            template = (
                prompt_template_latest_list(org=self.catalog.organization)
                .filter(application=application)
                .first()
            )
            try:
                self.templates[application] = (
                    template_variables(template.text) if template else None
                )
            except TemplateSyntaxError:
                self.templates[application] = None
        return self.templates[application]


@dataclass
class CleanRow:
    line: int
    sku: str
    name: str
    category: Category
    template: str
    attributes: dict[str, str]
    content_hash: str


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value).strip()
    raise ValueError("must be text or a number")


def _attributes(row: RawRow) -> dict[str, str]:
    raw = row.values.get("attributes")
    attributes: dict[str, Any] = {}
    if isinstance(raw, str) and raw.strip():
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the attributes cell is not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise ValueError("the attributes cell is nested too deeply") from None
    if raw not in (None, ""):
        if not isinstance(raw, dict):
            raise ValueError("attributes must be a JSON object of names to values")
        attributes.update(raw)
    for key, value in row.values.items():
        if key not in RESERVED and value not in (None, ""):
            attributes[key] = value
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"the row has {len(attributes)} attributes; the limit is {MAX_ATTRIBUTES}")
    clean: dict[str, str] = {}
    for key, value in attributes.items():
        key = str(key).strip()
        if not key or len(key) > MAX_ATTRIBUTE_NAME_CHARS:
            raise ValueError(
                f"attribute name '{key[:80]}' must be 1–{MAX_ATTRIBUTE_NAME_CHARS} characters"
            )
        try:
            clean[key] = _text(value)
        except ValueError:
            raise ValueError(f"attribute '{key}' must be text or a number") from None
    return clean


def check_row(row: RawRow, context: _Context) -> CleanRow:
    """The row, cleaned; ``ValueError`` with the reason it is rejected."""
    if row.error:
        raise ValueError(row.error)
    limit = int(settings.EASEL_CATALOG_MAX_CELL_CHARS)
    for key, value in row.values.items():
        try:
            length = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
        except RecursionError:
            raise ValueError(f"cell '{key}' is nested too deeply") from None
        if length > limit:
            raise ValueError(f"cell '{key}' is {length} characters long; the limit is {limit}")
    try:
        sku, name = _text(row.values.get("sku")), _text(row.values.get("name"))
        category_slug = _text(row.values.get("category"))
        template = _text(row.values.get("template"))
    except ValueError as exc:
        raise ValueError(f"sku, name, category and template {exc}") from None
    if not sku:
        raise ValueError("missing SKU")
    if len(sku) > MAX_SKU_CHARS:
        raise ValueError(f"SKU is {len(sku)} characters long; the limit is {MAX_SKU_CHARS}")
    if any(ord(c) < 32 for c in sku):
        raise ValueError("SKU contains control characters")
    if sku in context.seen:
        raise ValueError(f"SKU '{sku}' repeats line {context.seen[sku]}")
    if not name:
        raise ValueError("missing name")
    if control_characters(name):
        raise ValueError(
            f"name contains control characters ({', '.join(control_characters(name))})"
        )
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"name is {len(name)} characters long; the limit is {MAX_NAME_CHARS}")
    if not category_slug:
        raise ValueError("missing category")
    category = context.categories.get(category_slug)
    if category is None:
        known = ", ".join(sorted(context.categories)[:10]) or "none yet"
        raise ValueError(f"unknown category '{category_slug}' (the organization has: {known})")
    attributes = _attributes(row)
    application = template or context.catalog.default_template
    if application:
        needed = context.variables_of(application)
        if needed is None:
            raise ValueError(f"unknown template '{application}'")
        offered = set(attributes) | set(ROW_VARIABLES)
        missing = [v for v in needed if v not in offered]
        if missing:
            raise ValueError(
                f"template '{application}' needs {', '.join(missing)}, which the row lacks "
                "(give them as columns or in attributes)"
            )
    context.seen[sku] = row.line
    return CleanRow(
        line=row.line,
        sku=sku,
        name=name,
        category=category,
        template=template,
        attributes=attributes,
        content_hash=content_hash(
            name=name, category=category.slug, template=template, attributes=attributes
        ),
    )


# --- writing ----------------------------------------------------------------------------------


def _upsert(catalog: Catalog, rows: list[CleanRow], counts: dict[str, int]) -> None:
    existing = {
        p.sku: p
        for p in Product.objects.filter(catalog=catalog, sku__in=[r.sku for r in rows]).only(
            "pk", "sku", "content_hash"
        )
    }
    now = timezone.now()
    created: list[Product] = []
    updated: list[Product] = []
    for row in rows:
        product = existing.get(row.sku)
        if product is not None and product.content_hash == row.content_hash:
            counts["unchanged"] += 1
            continue
        (created if product is None else updated).append(
            Product(
                organization_id=catalog.organization_id,
                catalog=catalog,
                sku=row.sku,
                name=row.name,
                category=row.category,
                template=row.template,
                attributes=row.attributes,
                content_hash=row.content_hash,
                created_at=now,
                updated_at=now,
            )
        )
    Product.objects.bulk_create(created, batch_size=CHUNK_ROWS)
    # INSERT … ON CONFLICT DO UPDATE: one statement per chunk (bulk_update's CASE WHEN per row
    # and field cost ~2.6 ms a row; BENCHMARKS.md).
    Product.objects.bulk_create(
        updated,
        batch_size=CHUNK_ROWS,
        update_conflicts=True,
        unique_fields=["catalog", "sku"],
        update_fields=["name", "category", "template", "attributes", "content_hash", "updated_at"],
    )
    counts["created"] += len(created)
    counts["updated"] += len(updated)


def _rows(stream: IO[bytes], fmt: str, file_name: str) -> Iterable[RawRow]:
    """The file's rows; a file-level error names the file."""
    try:
        yield from read_csv(stream) if fmt == "csv" else read_jsonl(stream)
    except ImportFileError as exc:
        raise ImportFileError(f"{file_name}: {exc.message}", fields=exc.fields) from None


@transaction.atomic
def catalog_import(
    *,
    actor: Principal,
    catalog: Catalog,
    stream: IO[bytes],
    file_name: str,
    size: int | None = None,
    file_format: str = "",
) -> CatalogImport:
    """Import ``stream`` into ``catalog``: the good rows upserted, each bad one recorded as an
    ``ImportRejection`` (line, SKU, reason); the import's counts say how many of each.

    Raises ``ImportFileError`` (400) when the file as a whole cannot be read and ``TooLarge``
    (413) above ``EASEL_CATALOG_MAX_FILE_BYTES`` or ``EASEL_CATALOG_MAX_ROWS``; then nothing is
    imported.
    """
    require(actor, Action.TRAIN)
    max_bytes = int(settings.EASEL_CATALOG_MAX_FILE_BYTES)
    if size is not None and size > max_bytes:
        raise TooLarge(f"The file is {size} bytes; the limit is {max_bytes} bytes.")
    fmt = format_for(file_name, file_format)
    catalog = Catalog.objects.select_for_update().get(pk=catalog.pk)
    record = CatalogImport.objects.create(
        organization=actor.org,
        catalog=catalog,
        file_name=file_name[:255],
        file_format=fmt,
        created_by=actor.person,
        created_by_api_key=actor.api_key,
    )
    context = _Context(
        org_id=actor.org.pk,
        catalog=catalog,
        categories={c.slug: c for c in Category.objects.filter(organization=actor.org)},
    )
    max_rows = int(settings.EASEL_CATALOG_MAX_ROWS)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    rejections: list[ImportRejection] = []
    rejected = 0
    chunk: list[CleanRow] = []
    total = 0
    for row in _rows(stream, fmt, file_name):
        total += 1
        if total > max_rows:
            raise TooLarge(f"The file has more than {max_rows} rows; split it.")
        try:
            chunk.append(check_row(row, context))
        except ValueError as exc:
            sku = row.values.get("sku")
            sku = str(sku)[:MAX_SKU_CHARS] if isinstance(sku, str | int) else ""
            rejections.append(
                ImportRejection(
                    catalog_import=record, line=row.line, sku=sku, reason=str(exc)[:500]
                )
            )
            rejected += 1
        if len(chunk) >= CHUNK_ROWS:
            _upsert(catalog, chunk, counts)
            chunk = []
        if len(rejections) >= CHUNK_ROWS:
            ImportRejection.objects.bulk_create(rejections)
            rejections = []
    _upsert(catalog, chunk, counts)
    ImportRejection.objects.bulk_create(rejections)
    record.rows_total = total
    record.rows_created, record.rows_updated = counts["created"], counts["updated"]
    record.rows_unchanged = counts["unchanged"]
    record.rows_rejected = rejected
    record.finished_at = timezone.now()
    record.save()
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.CATALOG_IMPORTED,
        obj=record,
        after={
            "catalog": catalog.slug,
            "file": record.file_name,
            "rows": total,
            **counts,
            "rejected": rejected,
        },
    )
    return record

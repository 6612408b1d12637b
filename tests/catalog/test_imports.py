"""Catalog imports: every rejected row named by line and reason while the good rows go in,
upserts by SKU that recognize unchanged rows, JSONL, and file-level errors that import nothing."""

from __future__ import annotations

import io
import json

import pytest

from catalog.imports import ImportFileError, catalog_import, format_for
from catalog.models import Product
from tenants.errors import TooLarge

from .conftest import HEADER, csv_file, good_rows

pytestmark = pytest.mark.django_db


def _import(owner, catalog, data, name="products.csv"):  # type: ignore[no-untyped-def]
    if isinstance(data, bytes):
        data = io.BytesIO(data)
    return catalog_import(actor=owner.principal, catalog=catalog, stream=data, file_name=name)


def test_bad_rows_are_reported_by_line_and_the_good_ones_go_in(owner, catalog, settings):
    settings.EASEL_CATALOG_MAX_CELL_CHARS = 40
    rows = [
        *good_rows(2),
        ",No sku,produce,listing,red",  # line 4
        "SKU-X,Steak,meat,listing,red",  # line 5
        "SKU-Y,Pear,produce,nonesuch,red",  # line 6
        "SKU-Z,Plum,produce,listing,",  # line 7: an empty cell offers no colour
        "SKU-001,Again,produce,listing,red",  # line 8
        "SKU-L," + "x" * 41 + ",produce,listing,red",  # line 9
        'SKU-Q,"Apple, with a ""quoted""\nnewline",produce,,',  # lines 10-11
        "SKU-N,,produce,listing,red",  # line 12
    ]
    data = (HEADER + "".join(r + "\n" for r in rows)).encode()
    data += b"SKU-E,Caf\xe9,produce,listing,red\n"  # line 13: Latin-1, not UTF-8
    record = _import(owner, catalog, data)
    reasons = {r.line: r.reason for r in record.rejections.all()}
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9, 12, 13]
    assert reasons[4] == "missing SKU"
    assert "unknown category 'meat'" in reasons[5] and "produce" in reasons[5]
    assert reasons[6] == "unknown template 'nonesuch'"
    assert reasons[7].startswith("template 'listing' needs colour, which the row lacks")
    assert reasons[8] == "SKU 'SKU-001' repeats line 2"
    assert reasons[9] == "cell 'name' is 41 characters long; the limit is 40"
    assert reasons[12] == "missing name"
    assert reasons[13].startswith("bad encoding")
    assert (record.rows_total, record.rows_created, record.rows_rejected) == (11, 3, 8)
    skus = set(Product.objects.filter(catalog=catalog).values_list("sku", flat=True))
    assert skus == {"SKU-001", "SKU-002", "SKU-Q"}
    assert Product.objects.get(sku="SKU-Q").name == 'Apple, with a "quoted"\nnewline'


def test_a_variable_the_template_needs_and_the_row_lacks_is_named(owner, catalog):
    record = _import(
        owner,
        catalog,
        csv_file(["SKU-1,Apple,produce,listing"], header="sku,name,category,template\n"),
    )
    [rejection] = record.rejections.all()
    assert rejection.line == 2
    assert "template 'listing' needs colour" in rejection.reason


def test_reimport_upserts_by_sku_and_recognizes_unchanged_rows(owner, catalog):
    first = _import(owner, catalog, csv_file(good_rows(5)))
    assert (first.rows_created, first.rows_updated, first.rows_unchanged) == (5, 0, 0)
    before = dict(Product.objects.values_list("sku", "content_hash"))
    rows = good_rows(3) + good_rows(2, colour="green", start=4) + good_rows(1, start=6)
    second = _import(owner, catalog, csv_file(rows))
    assert (second.rows_created, second.rows_updated, second.rows_unchanged) == (1, 2, 3)
    after = dict(Product.objects.values_list("sku", "content_hash"))
    assert [s for s in before if before[s] != after[s]] == ["SKU-004", "SKU-005"]
    assert Product.objects.get(sku="SKU-004").attributes == {"colour": "green"}


def test_jsonl_rows_with_an_attributes_object(owner, catalog):
    lines = [
        json.dumps(
            {
                "sku": "J-1",
                "name": "Kiwi",
                "category": "produce",
                "template": "listing",
                "attributes": {"colour": "brown"},
            }
        ),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps(
            {
                "sku": "J-2",
                "name": "Lime",
                "category": "produce",
                "colour": "green",
                "template": "listing",
            }
        ),
    ]
    record = _import(owner, catalog, ("\n".join(lines) + "\n").encode(), name="p.jsonl")
    assert record.file_format == "jsonl"
    assert {r.line: r.reason for r in record.rejections.all()} == {
        2: "not valid JSON: Expecting property name enclosed in double quotes",
        3: "the line is not a JSON object",
    }
    assert Product.objects.get(sku="J-1").attributes == {"colour": "brown"}
    assert Product.objects.get(sku="J-2").attributes == {"colour": "green"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"sku,name\nA,B\n", "lacks the column(s) category"),
        (b"sku,name,category,sku\n", "names column 'sku' twice"),
    ],
)
def test_a_file_that_cannot_be_read_imports_nothing(owner, catalog, data, message):
    with pytest.raises(ImportFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _import(owner, catalog, data)
    assert not Product.objects.exists()


def test_too_many_rows_is_refused_and_imports_nothing(owner, catalog, settings):
    settings.EASEL_CATALOG_MAX_ROWS = 3
    with pytest.raises(TooLarge, match="more than 3 rows"):
        _import(owner, catalog, csv_file(good_rows(4)))
    assert not Product.objects.exists()


def test_format_comes_from_the_name_or_is_asked_for():
    assert format_for("a.CSV") == "csv"
    assert format_for("a.ndjson") == "jsonl"
    assert format_for("a.txt", "csv") == "csv"
    with pytest.raises(ImportFileError, match="Cannot tell the format"):
        format_for("a.txt")

"""Uploads read in one pass from a file: the same tables and profiles as the in-memory readers."""

from __future__ import annotations

import io
import json

import pytest

from aia_workers.ml.contracts.ingest import (
    JsonRowsError,
    MalformedJson,
    json_rows_to_csv,
    profile_csv,
)
from aia_workers.ml.contracts.tables import (
    ColumnKind,
    DatasetError,
    TableProfiler,
    profile_table,
    read_csv,
    read_rows,
    to_csv,
)

ROWS = [
    {"text": "great, would buy", "label": True, "stars": 5, "price": 9.5, "note": None},
    {"text": 'said "no"', "label": False, "stars": 1, "price": 10, "note": "x"},
    {"text": "ok", "label": True, "stars": 3, "price": 0.25, "note": ""},
]


def _convert(body: bytes) -> tuple[bytes, object]:
    sink = io.BytesIO()
    upload = json_rows_to_csv(io.BytesIO(body), sink)
    return sink.getvalue(), upload


def test_json_rows_stream_to_the_csv_and_profile_of_the_in_memory_reader() -> None:
    data, upload = _convert(json.dumps({"rows": ROWS, "name": "after the rows"}).encode())
    table = read_rows(ROWS)
    assert data == to_csv(table)
    assert upload.name == "after the rows"  # type: ignore[attr-defined]
    assert upload.profile == profile_table(table)  # type: ignore[attr-defined]


def test_csv_profile_read_from_a_file_matches_the_table_profile() -> None:
    data = b"age,city,when\n34,Paris,2024-01-05\n,Lyon,2024-02-11\n51,Paris,2024-03-09\n"
    assert profile_csv(io.BytesIO(data)) == profile_table(read_csv(data))


@pytest.mark.parametrize(
    ("body", "pointer", "kind"),
    [
        (b"[1, 2]", "", "model_type"),
        (b'{"rows": [{"a": 1}]}', "/name", "missing"),
        (b'{"name": "x"}', "/rows", "missing"),
        (b'{"name": "x", "rows": []}', "/rows", "too_short"),
        (b'{"name": "x", "rows": {"a": 1}}', "/rows", "list_type"),
        (b'{"name": 7, "rows": [{"a": 1}]}', "/name", "string_type"),
        (b'{"name": "x", "rows": [{"a": 1}], "extra": 1}', "/extra", "extra_forbidden"),
    ],
)
def test_a_body_off_the_schema_names_the_field(body: bytes, pointer: str, kind: str) -> None:
    with pytest.raises(JsonRowsError) as caught:
        _convert(body)
    assert (caught.value.pointer, caught.value.kind) == (pointer, kind)


def test_rows_that_differ_name_the_row_and_column() -> None:
    with pytest.raises(DatasetError, match="row 3") as caught:
        _convert(b'{"name": "x", "rows": [{"a": 1}, {"a": 2}, {"b": 3}]}')
    assert caught.value.row == 3


@pytest.mark.parametrize("body", [b"{nope", b'{"name": "x", "rows": [{"a": 1}'])
def test_broken_json_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedJson):
        _convert(body)


def test_a_bad_byte_deep_in_a_csv_is_named_by_its_offset() -> None:
    data = b"a,b\n" + b"1,2\n" * 1000 + b"3,\xff\n"
    with pytest.raises(DatasetError, match=f"byte {4 + 4 * 1000 + 2}"):
        profile_csv(io.BytesIO(data))


class _SmallBudget(TableProfiler):
    DISTINCT_BUDGET = 2_000


def test_distinct_values_are_counted_within_a_budget() -> None:
    profiler = _SmallBudget(["id", "group"])
    for i in range(50_000):
        profiler.add([f"user-{i}", f"g{i % 7}"])
    columns = {c.name: c for c in profiler.profile().columns}
    assert columns["group"].distinct == 7
    assert columns["group"].kind == ColumnKind.CATEGORICAL
    # Past its share (1,000 each) a column reports the share and is not a category.
    assert columns["id"].distinct == 1_000
    assert columns["id"].kind == ColumnKind.TEXT

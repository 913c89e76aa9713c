"""Reading uploaded tables and inferring their schema."""

from __future__ import annotations

import pytest

from aia_workers.ml.contracts.tables import (
    ColumnKind,
    DatasetError,
    profile_table,
    read_csv,
    read_rows,
    to_csv,
)

CSV = b"""age,city,member,joined,review,score
34,Paris,yes,2024-01-05,"Great service, would come back",0.5
,Lyon,no,2024-02-11,Slow and the staff were rude to us,
51,Paris,YES,2024-03-09T10:00:00,Fine,1.25
29,Nice,no,2024-04-01,Nothing special to say here at all,NA
"""


def test_kinds_missing_and_distinct_counts() -> None:
    table = read_csv(CSV)
    profile = profile_table(table)
    kinds = {c.name: c.kind for c in profile.columns}
    assert profile.rows == 4
    assert kinds == {
        "age": ColumnKind.NUMERIC,
        "city": ColumnKind.CATEGORICAL,
        "member": ColumnKind.BOOLEAN,
        "joined": ColumnKind.DATETIME,
        "review": ColumnKind.TEXT,
        "score": ColumnKind.NUMERIC,
    }
    missing = {c.name: c.missing for c in profile.columns}
    assert missing["age"] == 1
    assert missing["score"] == 2
    assert {c.name: c.distinct for c in profile.columns}["city"] == 3


def test_semicolons_are_sniffed() -> None:
    table = read_csv(b"a;b\n1;x\n2;y\n")
    assert table.columns == ["a", "b"]
    assert table.rows == [["1", "x"], ["2", "y"]]


@pytest.mark.parametrize(
    ("data", "message", "row"),
    [
        (b"", "empty", None),
        (b"   \n", "empty", None),
        (b"a,b\n", "no rows", None),
        (b"a,b\n1,2\n3\n", "row 3 has 1 fields", 3),
        (b"a,a\n1,2\n", "appears twice", 1),
        (b"a,,c\n1,2,3\n", "column 2 has no name", 1),
        (b"\xff\xfe,\n", "not UTF-8", None),
    ],
)
def test_bad_csv_is_named(data: bytes, message: str, row: int | None) -> None:
    with pytest.raises(DatasetError, match=message) as caught:
        read_csv(data)
    assert caught.value.row == row


def test_json_rows_round_trip_to_csv() -> None:
    table = read_rows([{"x": 1, "ok": True, "note": None}, {"x": 2.5, "ok": False, "note": "hi"}])
    assert table.rows == [["1", "true", ""], ["2.5", "false", "hi"]]
    again = read_csv(to_csv(table))
    assert again == table
    kinds = {c.name: c.kind for c in profile_table(table).columns}
    assert kinds["x"] == ColumnKind.NUMERIC
    assert kinds["ok"] == ColumnKind.BOOLEAN


def test_json_rows_must_share_their_columns() -> None:
    with pytest.raises(DatasetError, match="row 2") as caught:
        read_rows([{"x": 1, "y": 2}, {"x": 1}])
    assert caught.value.column == "y"
    with pytest.raises(DatasetError, match="JSON object"):
        read_rows([1, 2])
    with pytest.raises(DatasetError, match="no rows"):
        read_rows([])

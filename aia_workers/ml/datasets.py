"""Reading uploaded tables and inferring their schema, in plain Python.

The API runs this (on a worker thread) so an upload is checked and described
before it is accepted; it needs no numeric library, which keeps the API light.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from aia_workers.errors import AiaError

__all__ = [
    "ColumnKind",
    "ColumnProfile",
    "DatasetError",
    "DatasetProfile",
    "Table",
    "cell_text",
    "profile_table",
    "read_csv",
    "read_rows",
    "to_csv",
]

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})
TRUE_VALUES = frozenset({"true", "yes", "y", "t"})
FALSE_VALUES = frozenset({"false", "no", "n", "f"})
_MAX_COLUMNS = 1_000


class DatasetError(AiaError):
    """Raised when uploaded data cannot be used; names the column and row where it can."""

    def __init__(self, message: str, *, column: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.column = column
        self.row = row


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    name: str
    kind: ColumnKind
    missing: int
    distinct: int


@dataclass(frozen=True, slots=True)
class DatasetProfile:
    rows: int
    columns: list[ColumnProfile]

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": [asdict(c) for c in self.columns]}


@dataclass(frozen=True, slots=True)
class Table:
    """A parsed table: a header and rows of strings (missing values as "")."""

    columns: list[str]
    rows: list[list[str]]


def read_csv(data: bytes) -> Table:
    """Parse CSV bytes (UTF-8, header first); DatasetError names the row that breaks it."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"the file is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise DatasetError("the file is empty")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], ",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DatasetError(f"the header row cannot be read: {exc}", row=1) from None
    columns = _check_header(header)
    rows: list[list[str]] = []
    try:
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(columns):
                raise DatasetError(
                    f"row {line} has {len(row)} fields; the header has {len(columns)}", row=line
                )
            rows.append(row)
    except csv.Error as exc:
        raise DatasetError(
            f"row {reader.line_num} cannot be read: {exc}", row=reader.line_num
        ) from None
    if not rows:
        raise DatasetError("the file has a header but no rows")
    return Table(columns, rows)


def read_rows(records: Sequence[Any]) -> Table:
    """JSON rows (a list of objects) as a table; every row needs the same keys."""
    if not records:
        raise DatasetError("there are no rows")
    first = records[0]
    if not isinstance(first, Mapping):
        raise DatasetError("each row must be a JSON object", row=1)
    columns = _check_header([str(k) for k in first])
    rows: list[list[str]] = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise DatasetError("each row must be a JSON object", row=number)
        if set(record) != set(columns):
            missing = sorted(set(columns) - set(record)) or sorted(set(record) - set(columns))
            raise DatasetError(
                f"row {number} does not have the same columns as row 1 (differs in {missing[0]!r})",
                column=missing[0],
                row=number,
            )
        rows.append([cell_text(record[c]) for c in columns])
    return Table(columns, rows)


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return out.getvalue().encode()


def profile_table(table: Table) -> DatasetProfile:
    """The kind, missing count and distinct count of every column."""
    profiles = []
    for index, name in enumerate(table.columns):
        values = [row[index].strip() for row in table.rows]
        present = [v for v in values if v.lower() not in MISSING]
        profiles.append(
            ColumnProfile(
                name=name,
                kind=_kind(present, len(table.rows)),
                missing=len(values) - len(present),
                distinct=len(set(present)),
            )
        )
    return DatasetProfile(rows=len(table.rows), columns=profiles)


def _check_header(header: Iterable[str]) -> list[str]:
    columns = [h.strip() for h in header]
    if not columns or all(not c for c in columns):
        raise DatasetError("the header row is empty", row=1)
    if len(columns) > _MAX_COLUMNS:
        raise DatasetError(f"more than {_MAX_COLUMNS} columns", row=1)
    for position, name in enumerate(columns, start=1):
        if not name:
            raise DatasetError(f"column {position} has no name", row=1)
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise DatasetError(f"the column name {name!r} appears twice", column=name, row=1)
        seen.add(name)
    return columns


def cell_text(value: Any) -> str:
    """A JSON value as the text a CSV cell would hold (None is empty, booleans lower-case)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kind(values: list[str], rows: int) -> ColumnKind:
    if not values:
        return ColumnKind.TEXT
    lowered = {v.lower() for v in values}
    if lowered <= TRUE_VALUES | FALSE_VALUES:
        return ColumnKind.BOOLEAN
    if all(_is_number(v) for v in values):
        return ColumnKind.NUMERIC
    if all(_is_datetime(v) for v in values):
        return ColumnKind.DATETIME
    distinct = len(set(values))
    # Few distinct short values are categories; long or mostly unique strings are text.
    average = sum(len(v) for v in values) / len(values)
    if distinct <= max(20, rows // 20) and distinct < len(values) and average <= 40:
        return ColumnKind.CATEGORICAL
    return ColumnKind.TEXT


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.lower() not in {"inf", "-inf", "infinity", "-infinity", "nan"}


def _is_datetime(value: str) -> bool:
    if len(value) < 8 or value[:4].isdigit() is False:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True

"""Reading uploaded tables and inferring their schema, in plain Python.

The API runs this (on a worker thread) so an upload is checked and described
before it is accepted; it needs no numeric library, which keeps the API light.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, BinaryIO

from aia_workers.errors import AiaError

__all__ = [
    "ColumnKind",
    "ColumnProfile",
    "DatasetError",
    "DatasetProfile",
    "Table",
    "TableProfiler",
    "cell_text",
    "csv_rows",
    "profile_table",
    "read_csv",
    "read_rows",
    "row_cells",
    "row_columns",
    "to_csv",
]

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})
TRUE_VALUES = frozenset({"true", "yes", "y", "t"})
FALSE_VALUES = frozenset({"false", "no", "n", "f"})
_MAX_COLUMNS = 1_000
# How much of a file the dialect is guessed from.
_SNIFF_BYTES = 4096


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
    columns, rows = csv_rows(io.BytesIO(data))
    return Table(columns, list(rows))


def csv_rows(source: BinaryIO) -> tuple[list[str], Iterator[list[str]]]:
    """The header of a CSV file and its rows, read as they are needed.

    DatasetError names the row that breaks the file, also from the iterator,
    which raises it too when the file has no rows at all.
    """
    sample = source.read(_SNIFF_BYTES)
    if not sample.strip():
        raise DatasetError("the file is empty")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            sample.decode("utf-8-sig", errors="ignore"), ",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    source.seek(0)
    reader = csv.reader(_text_lines(source), dialect)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DatasetError(f"the header row cannot be read: {exc}", row=1) from None
    except StopIteration:
        raise DatasetError("the file is empty") from None
    columns = _check_header(header)
    return columns, _checked_rows(reader, len(columns))


def _checked_rows(reader: Any, width: int) -> Iterator[list[str]]:
    found = False
    try:
        for row in reader:
            if not row:
                continue
            if len(row) != width:
                line = reader.line_num
                raise DatasetError(
                    f"row {line} has {len(row)} fields; the header has {width}", row=line
                )
            found = True
            yield row
    except csv.Error as exc:
        raise DatasetError(
            f"row {reader.line_num} cannot be read: {exc}", row=reader.line_num
        ) from None
    if not found:
        raise DatasetError("the file has a header but no rows")


def _text_lines(source: BinaryIO) -> Iterator[str]:
    """UTF-8 lines with their endings, as csv wants them; a bad byte is named by its offset.

    Splitting on b"\\n" before decoding is safe: that byte is never part of a
    multi-byte UTF-8 sequence.
    """
    offset = 0
    encoding = "utf-8-sig"
    for raw in source:
        try:
            yield raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DatasetError(f"the file is not UTF-8 text (byte {offset + exc.start})") from None
        offset += len(raw)
        encoding = "utf-8"


def read_rows(records: Sequence[Any]) -> Table:
    """JSON rows (a list of objects) as a table; every row needs the same keys."""
    if not records:
        raise DatasetError("there are no rows")
    columns = row_columns(records[0])
    return Table(columns, [row_cells(r, columns, n) for n, r in enumerate(records, start=1)])


def row_columns(first: Any) -> list[str]:
    """The columns that the first JSON row names."""
    if not isinstance(first, Mapping):
        raise DatasetError("each row must be a JSON object", row=1)
    return _check_header([str(k) for k in first])


def row_cells(record: Any, columns: list[str], number: int) -> list[str]:
    """JSON row ``number`` as CSV cells, in the order of ``columns``."""
    if not isinstance(record, Mapping):
        raise DatasetError("each row must be a JSON object", row=number)
    if set(record) != set(columns):
        missing = sorted(set(columns) - set(record)) or sorted(set(record) - set(columns))
        raise DatasetError(
            f"row {number} does not have the same columns as row 1 (differs in {missing[0]!r})",
            column=missing[0],
            row=number,
        )
    return [cell_text(record[c]) for c in columns]


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return out.getvalue().encode()


def profile_table(table: Table) -> DatasetProfile:
    """The kind, missing count and distinct count of every column."""
    profiler = TableProfiler(table.columns)
    for row in table.rows:
        profiler.add(row)
    return profiler.profile()


class TableProfiler:
    """A table's profile taken one row at a time, in memory bounded by the column count.

    Distinct values are counted exactly up to a budget shared by the columns
    (``DISTINCT_BUDGET`` in all); a column past its share reports its share and
    is too varied to be categorical, so a table of any length is profiled in a
    few tens of megabytes at most.
    """

    DISTINCT_BUDGET = 1_000_000

    def __init__(self, columns: Sequence[str]) -> None:
        share = max(1_000, self.DISTINCT_BUDGET // max(1, len(columns)))
        self._columns = list(columns)
        self._tallies = [_ColumnTally(share) for _ in columns]
        self._rows = 0

    def add(self, row: Sequence[str]) -> None:
        self._rows += 1
        for tally, cell in zip(self._tallies, row, strict=True):
            tally.add(cell.strip())

    def profile(self) -> DatasetProfile:
        return DatasetProfile(
            rows=self._rows,
            columns=[
                tally.profile(name, self._rows)
                for name, tally in zip(self._columns, self._tallies, strict=True)
            ],
        )


class _ColumnTally:
    """What the kind inference needs to know of one column, without keeping its values."""

    __slots__ = (
        "_cap",
        "_capped",
        "_hashes",
        "boolean",
        "datetime",
        "length",
        "missing",
        "numeric",
        "present",
    )

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._capped = False
        # hash() of each distinct value: 64 bits, so a collision is a
        # one-in-billions event, and an int costs far less than the string.
        self._hashes: set[int] = set()
        self.missing = 0
        self.present = 0
        self.length = 0
        self.boolean = True
        self.numeric = True
        self.datetime = True

    def add(self, value: str) -> None:
        lowered = value.lower()
        if lowered in MISSING:
            self.missing += 1
            return
        self.present += 1
        self.length += len(value)
        if self.boolean and lowered not in TRUE_VALUES and lowered not in FALSE_VALUES:
            self.boolean = False
        if self.numeric and not _is_number(value):
            self.numeric = False
        if self.datetime and not _is_datetime(value):
            self.datetime = False
        if not self._capped:
            self._hashes.add(hash(value))
            if len(self._hashes) > self._cap:
                self._capped = True
                self._hashes = set()

    @property
    def distinct(self) -> int:
        return self._cap if self._capped else len(self._hashes)

    def profile(self, name: str, rows: int) -> ColumnProfile:
        return ColumnProfile(
            name=name, kind=self._kind(rows), missing=self.missing, distinct=self.distinct
        )

    def _kind(self, rows: int) -> ColumnKind:
        if not self.present:
            return ColumnKind.TEXT
        if self.boolean:
            return ColumnKind.BOOLEAN
        if self.numeric:
            return ColumnKind.NUMERIC
        if self.datetime:
            return ColumnKind.DATETIME
        # Few distinct short values are categories; long or mostly unique strings are text.
        average = self.length / self.present
        if (
            not self._capped
            and self.distinct <= max(20, rows // 20)
            and self.distinct < self.present
            and average <= 40
        ):
            return ColumnKind.CATEGORICAL
        return ColumnKind.TEXT


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

"""Uploads read in one pass from a file, in memory bounded whatever their length.

The API spools an upload to a temporary file and hands it here on a worker
thread: a CSV is checked and profiled row by row, JSON rows are written out as
CSV while they are parsed. Neither ever holds the table, so a 50 MB file of
tiny cells costs the API process megabytes, not the gigabyte its Python
objects would take.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import ijson

from aia_workers.ml.contracts.tables import (
    DatasetProfile,
    TableProfiler,
    csv_rows,
    row_cells,
    row_columns,
)

__all__ = ["JsonRowsError", "MalformedJson", "RowsUpload", "json_rows_to_csv", "profile_csv"]

_NAME_MAX = 200


class JsonRowsError(ValueError):
    """The JSON body is not the documented object; ``pointer`` says where (RFC 6901)."""

    def __init__(self, message: str, pointer: str, kind: str) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.kind = kind


class MalformedJson(ValueError):
    """The body is not JSON at all."""


@dataclass(frozen=True, slots=True)
class RowsUpload:
    name: str
    profile: DatasetProfile


def profile_csv(source: BinaryIO) -> DatasetProfile:
    """Check a CSV file row by row (DatasetError names the row) and profile it."""
    columns, rows = csv_rows(source)
    profiler = TableProfiler(columns)
    for row in rows:
        profiler.add(row)
    return profiler.profile()


def json_rows_to_csv(source: BinaryIO, sink: BinaryIO) -> RowsUpload:
    """``{"name": ..., "rows": [{...}, ...]}`` from ``source`` written to ``sink`` as CSV.

    The body is parsed as a stream of events, one row object built at a time;
    the rows are checked as ``read_rows`` checks them (each an object with the
    first row's keys) and profiled on the way.
    """
    text = io.TextIOWrapper(sink, encoding="utf-8", newline="")
    writer = csv.writer(text, lineterminator="\n")
    name: str | None = None
    profiler: TableProfiler | None = None
    columns: list[str] = []
    seen_rows = False
    events = _events(source)
    try:
        prefix, event, value = next(events)
        if event != "start_map":
            raise JsonRowsError("the body must be a JSON object", "", "model_type")
        for prefix, event, value in events:
            if prefix == "" and event == "map_key":
                if value not in ("name", "rows"):
                    raise JsonRowsError(f"unknown field {value!r}", f"/{value}", "extra_forbidden")
            elif prefix == "name":
                name = _name(event, value)
            elif prefix == "rows":
                if event != "start_array":
                    raise JsonRowsError("rows must be a list of objects", "/rows", "list_type")
                seen_rows = True
                for number, record in enumerate(_objects(events), start=1):
                    if profiler is None:
                        columns = row_columns(record)
                        profiler = TableProfiler(columns)
                        writer.writerow(columns)
                    row = row_cells(record, columns, number)
                    profiler.add(row)
                    writer.writerow(row)
    except ijson.JSONError as exc:
        raise MalformedJson(f"not valid JSON: {exc}") from None
    finally:
        text.flush()
        text.detach()
    if name is None:
        raise JsonRowsError("name is required", "/name", "missing")
    if not seen_rows:
        raise JsonRowsError("rows is required", "/rows", "missing")
    if profiler is None:
        raise JsonRowsError("rows must hold at least one row", "/rows", "too_short")
    return RowsUpload(name, profiler.profile())


def _events(source: BinaryIO) -> Iterator[tuple[str, str, Any]]:
    # use_float: numbers arrive as orjson would give them, not as Decimal.
    return iter(ijson.parse(source, use_float=True))


def _objects(events: Iterator[tuple[str, str, Any]]) -> Iterator[Any]:
    """Each item of the array whose ``start_array`` was just read, built whole."""
    for _, event, value in events:
        if event == "end_array":
            return
        builder = ijson.ObjectBuilder()
        builder.event(event, value)
        depth = 1 if event in ("start_map", "start_array") else 0
        while depth:
            _, event, value = next(events)
            builder.event(event, value)
            if event in ("start_map", "start_array"):
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
        yield builder.value


def _name(event: str, value: Any) -> str:
    if event != "string":
        raise JsonRowsError("name must be a string", "/name", "string_type")
    if not 1 <= len(value) <= _NAME_MAX:
        raise JsonRowsError(f"name must be 1 to {_NAME_MAX} characters", "/name", "string_too_long")
    return str(value)

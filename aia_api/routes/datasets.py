"""``/v1/ml/datasets``: upload a table (CSV or JSON rows), get its schema back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from aia_api.auth.roles import Permission
from aia_api.body import media_type, parse_model, read_bytes
from aia_api.params import page_limit
from aia_api.problems import Problem, dataset_problem
from aia_api.replies import page_reply
from aia_api.services import Services, services
from aia_api.tenancy import require
from aia_workers.db.datasets import DatasetRepository
from aia_workers.db.models import Dataset
from aia_workers.ml.datasets import DatasetError, Table, profile_table, read_csv, read_rows, to_csv

__all__ = ["DatasetRows", "routes"]

_MAX_PAGE = 200
# Room for the form's boundaries and part headers around a file at the size limit.
_FORM_OVERHEAD = 64 * 1024


class DatasetRows(BaseModel):
    """A dataset sent as JSON: a name and a list of objects with the same keys."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    rows: list[Any] = Field(min_length=1)


def view(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "rows": dataset.rows,
        "columns": dataset.columns,
        "size_bytes": dataset.size_bytes,
        "sha256": dataset.sha256,
        "created_at": dataset.created_at.isoformat(),
        "links": {"self": f"/v1/ml/datasets/{dataset.id}"},
    }


async def upload(request: Request) -> Response:
    principal = require(request, Permission.ML_TRAIN)
    svc = services(request)
    limit = svc.settings.max_dataset_bytes
    kind = media_type(request)
    if kind in ("text/csv", "application/csv"):
        name = request.query_params.get("name") or "dataset"
        if len(name) > 200:
            raise Problem(422, "validation-error", "Invalid request", "name is over 200 characters")
        data = await read_bytes(request, limit)
        table = await _parse(lambda: read_csv(data))
        stored = data
    elif kind == "application/json":
        raw = await read_bytes(request, limit)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Problem(
                400, "malformed-json", "Malformed JSON", f"not valid JSON: {exc}"
            ) from None
        request_rows = parse_model(DatasetRows, body)
        name = request_rows.name
        table = await _parse(lambda: read_rows(request_rows.rows))
        stored = to_csv(table)
    elif kind == "multipart/form-data":
        data, name = await _multipart(request, limit)
        table = await _parse(lambda: read_csv(data))
        stored = data
    else:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send text/csv (with ?name=), multipart/form-data (a `file` part) or "
            f"application/json rows (got {kind or 'nothing'})",
        )
    dataset = await anyio.to_thread.run_sync(
        _store, svc, principal.tenant, name, table, stored, f"{principal.kind}:{principal.id}"
    )
    return JSONResponse(
        view(dataset), status_code=201, headers={"Location": f"/v1/ml/datasets/{dataset.id}"}
    )


async def _multipart(request: Request, limit: int) -> tuple[bytes, str]:
    """The CSV file of a form upload (its ``file`` part), and a name for it."""
    # The whole body is read under the limit first, so an oversized upload is
    # refused while it streams in rather than after it has been spooled to disk.
    body = await read_bytes(request, limit + _FORM_OVERHEAD)
    replayed = False

    async def receive() -> Message:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, receive).form(max_files=1, max_fields=10)
    except (HTTPException, MultiPartException) as exc:
        detail = getattr(exc, "detail", None) or getattr(exc, "message", "")
        raise Problem(400, "malformed-form", "Malformed form", str(detail)) from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            "send the CSV in a form part named `file`",
            errors=[
                {
                    "loc": ["body", "file"],
                    "pointer": "/file",
                    "message": "a file part named `file` is required",
                    "type": "missing",
                }
            ],
        )
    data = await upload.read()
    await form.close()
    if len(data) > limit:
        raise Problem(
            413,
            "payload-too-large",
            "Payload too large",
            f"the file is larger than the limit of {limit} bytes",
            max_bytes=limit,
        )
    field = form.get("name")
    name = field if isinstance(field, str) and field else (upload.filename or "dataset")
    if len(name) > 200:
        raise Problem(422, "validation-error", "Invalid request", "name is over 200 characters")
    return data, name


async def _parse(read: Any) -> Table:
    try:
        table: Table = await anyio.to_thread.run_sync(read)
    except DatasetError as exc:
        raise dataset_problem(exc) from None
    return table


def _store(svc: Services, tenant: str, name: str, table: Table, data: bytes, actor: str) -> Dataset:
    dataset_id = str(uuid.uuid4())
    key = f"{tenant}/datasets/{dataset_id}.csv"
    digest = svc.artifacts.put(key, data)
    dataset = Dataset(
        id=dataset_id,
        tenant_id=tenant,
        name=name,
        rows=len(table.rows),
        columns=profile_table(table).as_json()["columns"],
        size_bytes=len(data),
        artifact_key=key,
        sha256=digest,
        created_by=actor,
        created_at=datetime.now(UTC),
    )
    with svc.sessions.begin() as session:
        DatasetRepository(session, tenant).add(dataset)
    return dataset


async def get_dataset(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    svc = services(request)
    dataset_id = request.path_params["dataset_id"]

    def load() -> Dataset | None:
        with svc.sessions() as session:
            return DatasetRepository(session, principal.tenant).get(dataset_id)

    dataset = await anyio.to_thread.run_sync(load)
    if dataset is None:
        raise Problem(
            404, "dataset-not-found", "Dataset not found", f"there is no dataset {dataset_id}"
        )
    return JSONResponse(view(dataset))


async def list_datasets(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    svc = services(request)
    params = request.query_params
    limit = page_limit(params, _MAX_PAGE)
    cursor = params.get("cursor") or None

    def load() -> tuple[list[Dataset], str | None]:
        with svc.sessions() as session:
            return DatasetRepository(session, principal.tenant).list(limit=limit, cursor=cursor)

    items, next_cursor = await anyio.to_thread.run_sync(load)
    return page_reply(request, [view(d) for d in items], next_cursor)


routes = [
    Route("/v1/ml/datasets", upload, methods=["POST"]),
    Route("/v1/ml/datasets", list_datasets, methods=["GET"]),
    Route("/v1/ml/datasets/{dataset_id}", get_dataset, methods=["GET"]),
]

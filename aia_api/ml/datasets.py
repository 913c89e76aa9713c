"""``/v1/ml/datasets``: upload a table (CSV or JSON rows), get its schema back."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.http.body import bounded_form, media_type, spool_body
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, WITH_BODY, Body, Ref, Reply, operation
from aia_api.http.problems import Problem, dataset_problem
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.ml.openapi import DATASET_ID, ML
from aia_api.ml.responses import DatasetPage, DatasetView
from aia_api.services import Services, services
from aia_workers.db.ml import Dataset
from aia_workers.db.quotas import lock_tenant, storage_used
from aia_workers.ml.contracts.ingest import (
    JsonRowsError,
    MalformedJson,
    json_rows_to_csv,
    profile_csv,
)
from aia_workers.ml.contracts.tables import DatasetError, DatasetProfile
from aia_workers.ml.datasets import DatasetRepository

__all__ = ["DatasetRows", "no_dataset_field", "routes"]

_T = TypeVar("_T")


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


def no_dataset_field(dataset_id: str) -> Problem:
    """The 422 for a body whose ``dataset_id`` names no dataset of the tenant."""
    return Problem(
        422,
        "dataset-not-found",
        "Dataset not found",
        f"there is no dataset {dataset_id}; upload one to /v1/ml/datasets",
        errors=[
            {
                "loc": ["body", "dataset_id"],
                "pointer": "/dataset_id",
                "message": f"there is no dataset {dataset_id}",
                "type": "not_found",
            }
        ],
    )


@operation(
    id="uploadDataset",
    summary="Upload a dataset",
    tag=ML,
    permission=Permission.ML_TRAIN,
    responses={
        201: Reply(
            "Stored, with the kind, missing and distinct counts of every column.",
            DatasetView,
            headers=("Location",),
        )
    },
    errors=(*SECURED, *WITH_BODY),
    description=(
        "Needs `ml:train`. Send CSV (`text/csv`, header first, `?name=`), a "
        "multipart form with the CSV in its `file` part, or JSON rows. "
        "Data that cannot be used is a 422 naming the column and row."
    ),
    body=Body(
        "The table.",
        content={
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "contentMediaType": "text/csv",
                            "description": "The CSV file.",
                        },
                        "name": {"type": "string", "maxLength": 200},
                    },
                    "required": ["file"],
                }
            },
            "application/json": {"schema": Ref(DatasetRows, "validation")},
        },
    ),
)
async def upload(request: Request) -> Response:
    principal = require(request, Permission.ML_TRAIN)
    svc = services(request)
    limit = svc.settings.max_dataset_bytes
    tenant = principal.tenant
    actor = principal.actor
    kind = media_type(request)
    # Every upload is spooled to a temporary file and read from there in one
    # pass, so the API's memory does not grow with the size of the table.
    with tempfile.TemporaryFile() as spool:
        if kind in ("text/csv", "application/csv"):
            name = _checked_name(request.query_params.get("name") or "dataset")
            size = await spool_body(request, spool, limit)
            await _check_quota(svc, tenant, size)
            profile = await _parse(lambda: profile_csv(_rewound(spool)))
            dataset = await anyio.to_thread.run_sync(
                _store, svc, tenant, name, profile, spool, actor
            )
        elif kind == "application/json":
            size = await spool_body(request, spool, limit)
            await _check_quota(svc, tenant, size)
            with tempfile.TemporaryFile() as table:
                rows = await _parse(lambda: json_rows_to_csv(_rewound(spool), table))
                dataset = await anyio.to_thread.run_sync(
                    _store, svc, tenant, rows.name, rows.profile, table, actor
                )
        elif kind == "multipart/form-data":
            form, file, name = await _multipart(request, limit)
            async with form_closing(form):
                await _check_quota(svc, tenant, file.size or 0)
                profile = await _parse(lambda: profile_csv(_rewound(file.file)))
                dataset = await anyio.to_thread.run_sync(
                    _store, svc, tenant, name, profile, file.file, actor
                )
        else:
            raise Problem(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                f"send text/csv (with ?name=), multipart/form-data (a `file` part) or "
                f"application/json rows (got {kind or 'nothing'})",
            )
    return JSONResponse(
        view(dataset), status_code=201, headers={"Location": f"/v1/ml/datasets/{dataset.id}"}
    )


def _checked_name(name: str) -> str:
    if len(name) > 200:
        raise Problem(422, "validation-error", "Invalid request", "name is over 200 characters")
    return name


def _rewound(source: BinaryIO) -> BinaryIO:
    source.seek(0)
    return source


@contextlib.asynccontextmanager
async def form_closing(form: FormData) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await form.close()


async def _multipart(request: Request, limit: int) -> tuple[FormData, UploadFile, str]:
    """The form of an upload, its CSV file (the ``file`` part) and a name for it."""
    form = await bounded_form(request, limit, lambda: _file_too_large(limit))
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        await form.close()
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
    if (upload.size or 0) > limit:
        await form.close()
        raise _file_too_large(limit)
    field = form.get("name")
    name = field if isinstance(field, str) and field else (upload.filename or "dataset")
    if len(name) > 200:
        await form.close()
    return form, upload, _checked_name(name)


def _file_too_large(limit: int) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        "Payload too large",
        f"the file is larger than the limit of {limit} bytes",
        max_bytes=limit,
    )


async def _parse(read: Callable[[], _T]) -> _T:
    try:
        return await anyio.to_thread.run_sync(read)
    except DatasetError as exc:
        raise dataset_problem(exc) from None
    except MalformedJson as exc:
        raise Problem(400, "malformed-json", "Malformed JSON", str(exc)) from None
    except JsonRowsError as exc:
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            str(exc),
            errors=[
                {
                    "loc": ["body", *[p for p in exc.pointer.split("/") if p]],
                    "pointer": exc.pointer,
                    "message": str(exc),
                    "type": exc.kind,
                }
            ],
        ) from None


async def _check_quota(svc: Services, tenant: str, size: int) -> None:
    def used() -> int:
        with svc.sessions() as session:
            return storage_used(session, tenant)

    _within_quota(svc, await anyio.to_thread.run_sync(used), size)


def _within_quota(svc: Services, used: int, size: int) -> None:
    quota = svc.settings.tenant_storage_bytes
    if used + size > quota:
        raise Problem(
            413,
            "storage-quota-exceeded",
            "Storage quota exceeded",
            f"this upload of {size} bytes would take the tenant's datasets and models past "
            f"its storage quota ({used} of {quota} bytes used); delete some first",
            used_bytes=used,
            quota_bytes=quota,
        )


def _store(
    svc: Services,
    tenant: str,
    name: str,
    profile: DatasetProfile,
    source: BinaryIO,
    actor: str,
) -> Dataset:
    dataset_id = str(uuid.uuid4())
    key = f"{tenant}/datasets/{dataset_id}.csv"
    size = source.seek(0, os.SEEK_END)
    with svc.sessions.begin() as session:
        # Checked again under the tenant's lock: two uploads racing past the
        # first check cannot both land beyond the quota.
        lock_tenant(session, tenant)
        _within_quota(svc, storage_used(session, tenant), size)
        digest = svc.artifacts.put_file(key, source)
        dataset = Dataset(
            id=dataset_id,
            tenant_id=tenant,
            name=name,
            rows=profile.rows,
            columns=profile.as_json()["columns"],
            size_bytes=size,
            artifact_key=key,
            sha256=digest,
            created_by=actor,
            created_at=datetime.now(UTC),
        )
        DatasetRepository(session, tenant).add(dataset)
    return dataset


@operation(
    id="getDataset",
    summary="A dataset's schema",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("The dataset.", DatasetView)},
    errors=(*SECURED, "404"),
    description="Needs `ml:read`.",
    parameters=(DATASET_ID,),
)
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


@operation(
    id="listDatasets",
    summary="List datasets",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("Newest first; follow links.next for more.", DatasetPage)},
    errors=(*SECURED, "400", "422"),
    description="Needs `ml:read`.",
    parameters=(LIMIT, CURSOR),
)
async def list_datasets(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[Dataset]:
        return DatasetRepository(session, principal.tenant).list(limit=limit, cursor=cursor)

    return await stored_page(request, services(request).sessions, fetch, view)


routes = [
    Route("/v1/ml/datasets", upload, methods=["POST"]),
    Route("/v1/ml/datasets", list_datasets, methods=["GET"]),
    Route("/v1/ml/datasets/{dataset_id}", get_dataset, methods=["GET"]),
]

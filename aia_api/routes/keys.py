"""``/v1/keys``: API keys for services, shown once, stored hashed, revoked at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.auth.identity import Principal
from aia_api.auth.roles import Permission, Role
from aia_api.body import parse_model, read_json
from aia_api.problems import Problem
from aia_api.services import services
from aia_api.tenancy import principal_of, require
from aia_workers.db.models import ApiKey

__all__ = ["routes"]


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.OPERATOR
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


def _view(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "prefix": key.prefix,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _manager(request: Request) -> tuple[Principal, str | None]:
    """The caller and, unless it manages every key, the owner whose keys it may touch.

    Admins (``keys:manage``) manage the tenant's keys; a person without that
    permission manages the keys they created themselves, with roles up to theirs.
    """
    principal = principal_of(request)
    if principal.can(Permission.KEYS_MANAGE):
        return principal, None
    if principal.kind == "user":
        return principal, principal.id
    return require(request, Permission.KEYS_MANAGE), None


async def create_key(request: Request) -> Response:
    principal, _ = _manager(request)
    svc = services(request)
    body = parse_model(KeyRequest, await read_json(request, svc.settings.max_body_bytes))
    if not principal.role.covers(body.role):
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            f"a {principal.role} cannot create a key with the {body.role} role",
        )
    expires = (
        datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    )
    record, plaintext = await anyio.to_thread.run_sync(
        lambda: svc.identity.create_key(
            tenant=principal.tenant,
            name=body.name,
            role=body.role,
            created_by=principal.id,
            expires_at=expires,
        )
    )
    await svc.audit.record(
        "key.create",
        "success",
        tenant=principal.tenant,
        actor=f"{principal.kind}:{principal.id}",
        client_address=request.client.host if request.client else None,
        detail={"key_id": record.id, "role": record.role, "name": record.name},
    )
    view = _view(record) | {"key": plaintext}
    return JSONResponse(
        view,
        status_code=201,
        headers={"Location": f"/v1/keys/{record.id}", "Cache-Control": "no-store"},
    )


async def list_keys(request: Request) -> Response:
    principal, owner = _manager(request)
    keys = await anyio.to_thread.run_sync(
        services(request).identity.list_keys, principal.tenant, owner
    )
    return JSONResponse({"items": [_view(k) for k in keys]})


async def revoke_key(request: Request) -> Response:
    principal, owner = _manager(request)
    svc = services(request)
    key_id = request.path_params["key_id"]
    key_hash = await anyio.to_thread.run_sync(
        svc.identity.revoke_key, principal.tenant, key_id, owner
    )
    if key_hash is None:
        raise Problem(404, "key-not-found", "API key not found", f"there is no API key {key_id}")
    await svc.auth.revoked(f"key:{key_hash}")
    await svc.audit.record(
        "key.revoke",
        "success",
        tenant=principal.tenant,
        actor=f"{principal.kind}:{principal.id}",
        client_address=request.client.host if request.client else None,
        detail={"key_id": key_id},
    )
    return Response(status_code=204)


routes = [
    Route("/v1/keys", create_key, methods=["POST"]),
    Route("/v1/keys", list_keys, methods=["GET"]),
    Route("/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
]

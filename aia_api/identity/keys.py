"""``/v1/keys``: API keys for services, shown once, stored hashed, revoked at once.

A key never does more than whoever made it may do now (see
``IdentityStore.active_key``), expires after ``AIA_API_KEY_DEFAULT_DAYS``
unless an admin says otherwise, and an admin key can only be made by an admin
whose session passed MFA, or on the host with ``aia keys create``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.client import client_address
from aia_api.http.openapi import SECURED, WITH_BODY, Body, Reply, Tag, operation, path_param
from aia_api.http.problems import Problem
from aia_api.http.tenancy import principal_of, require
from aia_api.identity.principal import Principal
from aia_api.identity.responses import KeyList, NewKey
from aia_api.identity.roles import Permission, Role
from aia_api.services import services
from aia_workers.db.identity import ApiKey
from aia_workers.settings import Settings

__all__ = ["routes"]

_KEYS = Tag("keys", "API keys for services.")
_KEY_ID = path_param("KeyId", "key_id", "The API key's id (not the key itself).")


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.OPERATOR
    expires_in_days: Annotated[int, Field(ge=1, le=36_500)] | Literal["never"] | None = Field(
        default=None,
        description=(
            "Days until the key expires; by default AIA_API_KEY_DEFAULT_DAYS (90). Longer, or "
            '"never", needs an admin, and may not pass AIA_API_KEY_MAX_DAYS (365; "never" only '
            "when that is 0)."
        ),
    )


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


def _lifetime(
    asked: int | Literal["never"] | None, principal: Principal, settings: Settings
) -> timedelta | None:
    """How long the new key lives (None: for ever), or a Problem saying why not as asked."""
    longest = settings.api_key_max_days
    usual = (
        min(settings.api_key_default_days, longest) if longest else settings.api_key_default_days
    )
    if asked is None:
        return timedelta(days=usual)
    days = None if asked == "never" else int(asked)
    if (days is None or days > usual) and not principal.can(Permission.KEYS_MANAGE):
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            f"only an admin can make a key that lasts longer than {usual} days",
        )
    if longest and (days is None or days > longest):
        raise Problem(
            422,
            "key-lifetime-too-long",
            "Key lifetime too long",
            f"keys made through the API last at most {longest} days here "
            "(AIA_API_KEY_MAX_DAYS); ask for fewer, or make the key on the host with "
            "`aia keys create`",
        )
    return None if days is None else timedelta(days=days)


def _check_role(principal: Principal, role: Role) -> None:
    if not principal.role.covers(role):
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            f"a {principal.role} cannot create a key with the {role} role",
        )
    # A key with every right must not be a way round MFA: only a person who
    # has just shown a second factor (or the host) may make one.
    if role is Role.ADMIN and not (principal.kind == "user" and principal.mfa):
        raise Problem(
            403,
            "mfa-required",
            "A second factor is needed",
            "an admin key can only be made by an admin whose session passed MFA: turn MFA "
            "on, log in with a code and try again, or use `aia keys create` on the host",
        )


@operation(
    id="createKey",
    summary="Create an API key",
    tag=_KEYS,
    responses={
        201: Reply(
            "The key, shown this once; only its hash is kept.", NewKey, headers=("Location",)
        )
    },
    errors=(*SECURED, *WITH_BODY),
    description=(
        "Admins (`keys:manage`) manage the tenant's keys; a person without it "
        "manages the keys they made. The new key's role may not exceed the "
        "caller's, and it never acts above its maker's current role: a key made by "
        "a person follows their demotion and stops when they are deleted; a key "
        "made by a key expires with it and stops when it is revoked. An `admin` "
        "key needs a person whose session passed MFA (403 `mfa-required`). Keys "
        "expire after `AIA_API_KEY_DEFAULT_DAYS` (90) unless `expires_in_days` "
        "says otherwise; longer or `never` needs `keys:manage` (403), and past "
        "`AIA_API_KEY_MAX_DAYS` (365) is a 422 `key-lifetime-too-long`."
    ),
    body=Body("A name, a role and an optional lifetime.", KeyRequest),
)
async def create_key(request: Request) -> Response:
    principal, _ = _manager(request)
    svc = services(request)
    body = parse_model(KeyRequest, await read_json(request, svc.settings.max_body_bytes))
    _check_role(principal, body.role)
    lifetime = _lifetime(body.expires_in_days, principal, svc.settings)
    record, plaintext = await anyio.to_thread.run_sync(
        lambda: svc.identity.create_key(
            tenant=principal.tenant,
            name=body.name,
            role=body.role,
            created_by=principal.id,
            lifetime=lifetime,
        )
    )
    await svc.audit.record(
        "key.create",
        "success",
        tenant=principal.tenant,
        actor=principal.actor,
        client_address=client_address(request),
        detail={
            "key_id": record.id,
            "role": record.role,
            "name": record.name,
            "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        },
    )
    view = _view(record) | {"key": plaintext}
    return JSONResponse(
        view,
        status_code=201,
        headers={"Location": f"/v1/keys/{record.id}", "Cache-Control": "no-store"},
    )


@operation(
    id="listKeys",
    summary="List API keys",
    tag=_KEYS,
    responses={200: Reply("The tenant's keys, without the keys themselves.", KeyList)},
    errors=SECURED,
    description="Admins see every key of the tenant; a person sees their own.",
)
async def list_keys(request: Request) -> Response:
    principal, owner = _manager(request)
    keys = await anyio.to_thread.run_sync(
        services(request).identity.list_keys, principal.tenant, owner
    )
    return JSONResponse({"items": [_view(k) for k in keys]})


@operation(
    id="revokeKey",
    summary="Revoke an API key",
    tag=_KEYS,
    responses={204: Reply("Revoked, at once in every API process.")},
    errors=(*SECURED, "404"),
    description="Admins revoke any key of the tenant; a person, their own.",
    parameters=(_KEY_ID,),
)
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
        actor=principal.actor,
        client_address=client_address(request),
        detail={"key_id": key_id},
    )
    return Response(status_code=204)


routes = [
    Route("/v1/keys", create_key, methods=["POST"]),
    Route("/v1/keys", list_keys, methods=["GET"]),
    Route("/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
]

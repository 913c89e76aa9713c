"""Who a request acts for: the one place every route asks."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from aia_api.http.problems import Problem
from aia_api.identity.authenticator import Principal
from aia_api.identity.roles import Permission

__all__ = ["principal_of", "require", "tenant_of"]


def principal_of(conn: HTTPConnection) -> Principal:
    principal = getattr(conn.state, "principal", None)
    if not isinstance(principal, Principal):
        raise Problem(401, "unauthenticated", "Unauthenticated", "this route needs credentials")
    return principal


def tenant_of(conn: HTTPConnection) -> str:
    """The caller's tenant; every query and stream is scoped by it."""
    return principal_of(conn).tenant


def require(conn: HTTPConnection, permission: Permission | str) -> Principal:
    """The caller, when allowed ``permission``; else a 403 Problem naming it."""
    principal = principal_of(conn)
    if not principal.can(permission):
        conn.app.state.services.audit.record_soon(
            "permission.denied",
            "failure",
            tenant=principal.tenant,
            actor=principal.actor,
            client_address=conn.client.host if conn.client else None,
            detail={"permission": str(permission), "path": conn.url.path},
        )
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            f"this needs the {permission} permission, which the {principal.role} role "
            "does not have",
            permission=str(permission),
        )
    return principal

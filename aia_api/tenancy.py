"""Which tenant a request acts for: the one place every route asks."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from aia_workers.settings import DEFAULT_TENANT

__all__ = ["tenant_of"]


def tenant_of(conn: HTTPConnection) -> str:
    """The caller's tenant; until principals exist every caller acts for the default one."""
    return getattr(conn.state, "tenant", DEFAULT_TENANT)

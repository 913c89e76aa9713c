"""An endpoint's messages and attempt log, as its API lists them."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["endpoint_attempts", "endpoint_messages"]


def endpoint_messages(
    client: httpx.Client, endpoint: dict[str, Any], **params: str
) -> list[dict[str, Any]]:
    response = client.get(endpoint["links"]["messages"], params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def endpoint_attempts(
    client: httpx.Client, endpoint: dict[str, Any], **params: str
) -> list[dict[str, Any]]:
    """Oldest first."""
    response = client.get(endpoint["links"]["attempts"], params=params)
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["items"]))

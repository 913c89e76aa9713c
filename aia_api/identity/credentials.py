"""Opaque credentials: API keys and refresh tokens, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["API_KEY_PREFIX", "REFRESH_PREFIX", "digest", "new_api_key", "new_refresh_token"]

API_KEY_PREFIX = "aia_"
REFRESH_PREFIX = "aiar_"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret: enough, since it cannot be guessed."""
    return hashlib.sha256(secret.encode()).hexdigest()

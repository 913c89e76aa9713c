"""Stream tickets: single-use, short-lived stand-ins for a credential in a stream's URL.

Browsers cannot set headers on an EventSource or a WebSocket handshake, and a
credential in a query string ends up in access logs, proxies and browser
history. So a client asks ``POST /v1/streams/tickets`` (with its usual
credentials) for a ticket and opens the stream with ``?ticket=``.

A ticket is 256 random bits. Redis keeps only its SHA-256, the principal it
was made for, and the credential that asked for it, encrypted (AES-GCM) under
a key derived from the ticket: whoever reads Redis can neither use a ticket
nor learn the credential. GETDEL spends it, so the first use wins and any
later one is refused; unused, it expires after ``stream_ticket_ttl_seconds``.
The credential comes back with it so that the stream can check it again for
as long as it stays open, exactly as a request with it in a header would be.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets

import orjson
import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import Field
from starlette.datastructures import QueryParams
from starlette.types import Scope

from aia_api.http.responses import Closed
from aia_api.identity.authenticator import Authenticator, Unauthenticated
from aia_api.identity.principal import Principal
from aia_api.tasks.streaming.credential import STANDIN_CREDENTIAL, Credential

__all__ = ["StreamTicket", "accepts_ticket", "issue_ticket", "redeem_ticket"]

_PREFIX = "aia:stream-ticket:"
_INFO = b"aia stream ticket v1"
_NONCE_BYTES = 12
_TICKET = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32)
# The stream routes; nothing else takes a ticket.
_STREAM_PATH = re.compile(r"^/v1/ws$|^/v1/tasks/[^/]+/events$|^/v1/agents/[^/]+/messages/events$")
_HOW = "ask POST /v1/streams/tickets for a ticket and open the stream with ?ticket="


class StreamTicket(Closed):
    """A single-use ticket that opens one event stream: `?ticket=` on the SSE or WebSocket URL."""

    ticket: str = Field(description="Opaque; send it once, as `?ticket=`, within `expires_in`.")
    expires_in: int = Field(description="Seconds until the ticket lapses unused.")


def _key(ticket: str) -> str:
    return _PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


def _cipher(ticket: str) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return AESGCM(hkdf.derive(ticket.encode()))


async def issue_ticket(
    client: aioredis.Redis, credential: Credential, principal: Principal, ttl_seconds: int
) -> str:
    """A new ticket standing for ``credential`` (which resolved to ``principal``)."""
    ticket = secrets.token_urlsafe(32)
    plain = orjson.dumps(
        {
            "authorization": credential.authorization,
            "api_key": credential.api_key,
            "principal": [principal.kind, principal.id, principal.tenant],
        }
    )
    nonce = os.urandom(_NONCE_BYTES)
    sealed = nonce + _cipher(ticket).encrypt(nonce, plain, None)
    await client.set(_key(ticket), base64.b64encode(sealed).decode(), ex=ttl_seconds)
    return ticket


def accepts_ticket(scope: Scope) -> bool:
    """True for the stream routes, the only ones where ``?ticket=`` stands for credentials."""
    return bool(_STREAM_PATH.match(scope["path"]))


async def redeem_ticket(scope: Scope, client: aioredis.Redis, auth: Authenticator) -> Principal:
    """Spend the request's ``?ticket=``; the principal, its credential left in the scope.

    Unauthenticated when there is no ticket, or it is unknown, spent, expired,
    or its credential no longer authenticates as the principal it was made for.
    """
    query = QueryParams(scope.get("query_string", b""))
    ticket = query.get("ticket")
    if not ticket:
        if "access_token" in query:
            raise Unauthenticated(f"?access_token= is not accepted: {_HOW}")
        raise Unauthenticated(
            "this route needs credentials: 'Authorization: Bearer <token>' or 'X-API-Key', "
            f"or where headers cannot be set, {_HOW}"
        )
    stored = await client.getdel(_key(ticket)) if _TICKET.match(ticket) else None
    if not isinstance(stored, str):
        raise Unauthenticated(f"the stream ticket is unknown, used or expired: {_HOW}")
    try:
        sealed = base64.b64decode(stored)
        plain = _cipher(ticket).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], None)
    except (ValueError, InvalidTag):
        raise Unauthenticated(f"the stream ticket is not valid: {_HOW}") from None
    record = orjson.loads(plain)
    credential = Credential(record["authorization"], record["api_key"])
    # Checked again now: a key revoked since the ticket was made does not open a stream.
    principal = await auth.authenticate(credential.authorization, credential.api_key)
    if [principal.kind, principal.id, principal.tenant] != record["principal"]:
        raise Unauthenticated(f"the stream ticket was made for someone else: {_HOW}")
    scope.setdefault("state", {})[STANDIN_CREDENTIAL] = credential
    return principal

"""Standard Webhooks signing: endpoint secrets and the webhook-* headers of a delivery."""

from __future__ import annotations

import base64
import re
import secrets as _secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

__all__ = ["SECRET_PATTERN", "SECRET_PREFIX", "check_secret", "new_secret", "signed_headers"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret

_B64 = "[A-Za-z0-9+/]"
# Padded base64 of 24 to 64 bytes: n bytes are n // 3 four-character groups plus,
# for n % 3 of 1 or 2, one padded group. 24..62 bytes need 8..20 full groups and
# an optional tail; 63 and 64 bytes need 21 full groups and at most a 1-byte tail.
# Kept free of look-arounds so pydantic (Rust regex) and JSON Schema can reuse it.
SECRET_PATTERN = (
    rf"^{SECRET_PREFIX}"
    rf"(?:(?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
    rf"|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)$"
)
_SECRET_RE = re.compile(SECRET_PATTERN)
_SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def check_secret(secret: str) -> None:
    """Raise ValueError unless ``secret`` is ``whsec_`` + padded base64 of 24-64 bytes."""
    # The message never repeats the value: it is a credential.
    if not _SECRET_RE.fullmatch(secret):
        raise ValueError(
            f"a webhook secret must be {SECRET_PREFIX!r} followed by the padded base64 "
            "of 24 to 64 bytes"
        )


def signed_headers(
    msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """The webhook-id, webhook-timestamp and webhook-signature headers for one message.

    ``timestamp`` is in unix seconds. ``body`` must be UTF-8 (it is JSON we
    produced). Every secret signs: during a rotation the receiver accepts the
    message with either the old or the new one, so the signatures are joined
    by spaces as the spec asks.
    """
    if not secrets:
        raise ValueError("signing needs at least one webhook secret")
    if not msg_id:
        raise ValueError("a webhook message id must not be empty")
    for secret in secrets:
        check_secret(secret)
    data = body.decode("utf-8")
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    signatures = [Webhook(secret).sign(msg_id, when, data) for secret in secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }

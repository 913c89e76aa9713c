"""Standard Webhooks signatures: secrets, rotation, tampering, and the HMAC by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from aia_workers.webhooks.signing import (
    SECRET_PATTERN,
    check_secret,
    new_secret,
    signed_headers,
)

BODY = json.dumps({"type": "task.succeeded", "data": {"task_id": "t-1", "note": "héllo"}}).encode()


def _secret(n_bytes: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(n_bytes))).decode()


def test_new_secret_is_32_random_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(base64.b64decode(a.removeprefix("whsec_"), validate=True)) == 32
    check_secret(a)


@pytest.mark.parametrize("n_bytes", [24, 25, 26, 32, 48, 62, 63, 64])
def test_secrets_of_24_to_64_bytes_pass(n_bytes: int) -> None:
    check_secret(_secret(n_bytes))
    assert re.fullmatch(SECRET_PATTERN, _secret(n_bytes))


@pytest.mark.parametrize(
    "secret",
    [
        _secret(23),
        _secret(65),
        _secret(96),
        _secret(32).removeprefix("whsec_"),
        "whsk_" + _secret(32).removeprefix("whsec_"),
        _secret(32).rstrip("="),
        _secret(32) + "\n",
        "whsec_" + "!" * 44,
        "whsec_",
        "",
    ],
)
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="whsec_") as caught:
        check_secret(secret)
    if len(secret) > 12:
        assert secret[6:] not in str(caught.value), "the message must not echo the secret"


def test_both_secrets_of_a_rotation_verify_the_same_headers() -> None:
    old, new = new_secret(), new_secret()
    headers = signed_headers("msg_1", int(time.time()), BODY, [old, new])
    assert headers["webhook-id"] == "msg_1"
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_a_tampered_body_fails_verification() -> None:
    secret = new_secret()
    headers = signed_headers("msg_2", int(time.time()), BODY, [secret])
    tampered = BODY.replace(b"t-1", b"t-2")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)


def test_signature_matches_a_hand_computed_hmac() -> None:
    secret = _secret(32)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, ts, body = "msg_2Lh9", 1_700_000_000, b'{"a":1,"b":"\xc3\xa9"}'
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    headers = signed_headers(msg_id, ts, body, [secret])
    assert headers == {
        "webhook-id": msg_id,
        "webhook-timestamp": "1700000000",
        "webhook-signature": f"v1,{expected}",
    }


def test_signing_needs_a_secret_an_id_and_valid_secrets() -> None:
    with pytest.raises(ValueError, match="at least one"):
        signed_headers("msg_3", 1, BODY, [])
    with pytest.raises(ValueError, match="id"):
        signed_headers("", 1, BODY, [new_secret()])
    with pytest.raises(ValueError, match="whsec_"):
        signed_headers("msg_3", 1, BODY, [new_secret(), "whsec_short"])

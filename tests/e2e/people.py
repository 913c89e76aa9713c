"""People for the identity tests: log in, turn MFA on, read the audit log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp

from tests.support import TEST_PASSWORD, Stack, wait_for

PROBLEM = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(url: str, username: str, totp: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"username": username, "password": TEST_PASSWORD}
    if totp is not None:
        body["totp"] = totp
    return httpx.post(f"{url}/v1/auth/token", json=body, timeout=30)


def next_code(totp: pyotp.TOTP) -> str:
    """The next time step's code: in the verifier's window and not used yet.

    Enrolling spends the current step, so the first login after it takes this.
    """
    return totp.at(time.time() + totp.interval)


@dataclass
class Person:
    username: str
    access: str
    totp: pyotp.TOTP | None = None
    recovery: tuple[str, ...] = ()


def person(stack: Stack, role: str = "operator", tenant: str = "default") -> Person:
    """A new account, logged in."""
    username = stack.create_user(role, tenant)
    response = login(stack.api_url, username)
    assert response.status_code == 200, response.text
    return Person(username, response.json()["access_token"])


def with_mfa(stack: Stack, someone: Person) -> Person:
    """``someone`` with MFA turned on (enrolled with the password, confirmed with a code)."""
    url, auth = stack.api_url, bearer(someone.access)
    enrolled = httpx.post(
        f"{url}/v1/auth/mfa/enroll", json={"password": TEST_PASSWORD}, headers=auth
    )
    assert enrolled.status_code == 200, enrolled.text
    totp = pyotp.TOTP(enrolled.json()["secret"])
    verified = httpx.post(f"{url}/v1/auth/mfa/verify", json={"code": totp.now()}, headers=auth)
    assert verified.status_code == 200, verified.text
    return Person(someone.username, someone.access, totp, tuple(verified.json()["recovery_codes"]))


def audited(
    client: httpx.Client, action: str, match: dict[str, Any], outcome: str = "success"
) -> dict[str, Any]:
    """The audit event of ``action`` whose detail holds ``match`` (waited for: written aside)."""

    def find() -> dict[str, Any] | None:
        events = client.get("/v1/audit", params={"action": action, "limit": 200}).json()
        for event in events["items"]:
            detail = event["detail"] or {}
            if event["outcome"] == outcome and match.items() <= detail.items():
                return event  # type: ignore[no-any-return]
        return None

    return wait_for(find, 10, what=f"the audit event {action} {match}")  # type: ignore[no-any-return]

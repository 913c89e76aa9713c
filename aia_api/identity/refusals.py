"""The problems a caller whose credentials were refused gets, wherever they were checked."""

from __future__ import annotations

from aia_api.http.problems import Problem
from aia_api.identity.authenticator import TooManyFailures

__all__ = ["too_many_failures", "unauthenticated"]


def unauthenticated(detail: str) -> Problem:
    """401 with the challenge a bearer-token client expects."""
    return Problem(
        401,
        "unauthenticated",
        "Unauthenticated",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="aia"'},
    )


def too_many_failures(exc: TooManyFailures) -> Problem:
    """429: the client address failed too often to have more credentials looked up."""
    return Problem(
        429,
        "too-many-failures",
        "Too many failed authentications",
        str(exc),
        headers={"Retry-After": str(exc.retry_after)},
    )

"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from aia_workers.errors import AiaError

__all__ = ["MIN_LENGTH", "PasswordPolicyError", "check_policy", "hash_password", "verify_password"]

MIN_LENGTH = 12
_HASHER = PasswordHasher()
# Verifying against this when the user does not exist keeps the time the same.
_DUMMY = _HASHER.hash("not a password of anybody's")


class PasswordPolicyError(AiaError):
    """Raised when a new password does not meet the policy."""


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(
            f"the password must be at least {MIN_LENGTH} characters long "
            f"(it has {len(password)}); a few unrelated words make a good one"
        )


def hash_password(password: str) -> str:
    check_policy(password)
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; slow on purpose, so call it off the event loop."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False

"""Secrets kept in the database (TOTP seeds, webhook signing secrets), encrypted at rest.

The keys live in ``AIA_ENCRYPTION_KEYS``, never in the database, so a dump of
it alone signs no webhook and passes no MFA check. Values are Fernet tokens
(AES-128-CBC with an HMAC-SHA256, from ``cryptography``). The first key
encrypts and every key decrypts: a new key goes first, the old one stays
behind it until ``aia secrets rotate`` has re-encrypted every row.

Rows written before encryption hold the secret itself; they are read as they
are until ``aia secrets rotate`` encrypts them. A Fernet token always starts
with ``gAAAAA`` (version byte 0x80, then the high bytes of its timestamp),
which neither a base32 TOTP seed nor a ``whsec_`` secret can.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from aia_workers.errors import AiaError
from aia_workers.settings import InsecureSettingsError, Settings

__all__ = ["SecretBox", "SecretBoxError", "new_key"]

_TOKEN_PREFIX = "gAAAAA"  # noqa: S105 - how every Fernet token starts, not a secret
_KEY_HELP = (
    "AIA_ENCRYPTION_KEYS must be a JSON list of Fernet keys, the one that encrypts first "
    "(make one with `python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'`)"
)


class SecretBoxError(AiaError):
    """Raised when a stored secret cannot be decrypted, or there is no key to use."""


def new_key() -> str:
    """A fresh random key for ``AIA_ENCRYPTION_KEYS``."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts secrets for the database and decrypts them back.

    A box made without keys (dev mode, nothing configured) refuses every
    operation with a message saying what to set, rather than storing plaintext.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        try:
            fernets = [Fernet(key.encode("ascii")) for key in keys]
        except (ValueError, UnicodeEncodeError):
            # The message never repeats the value: it is a key.
            raise InsecureSettingsError(_KEY_HELP) from None
        self._current = fernets[0] if fernets else None
        self._all = MultiFernet(fernets) if fernets else None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box for ``settings``; InsecureSettingsError without keys outside dev mode."""
        if not settings.encryption_keys and not settings.dev:
            raise InsecureSettingsError(_KEY_HELP + "; set AIA_DEV=1 only on a development machine")
        return cls(settings.encryption_keys)

    @staticmethod
    def is_sealed(stored: str) -> bool:
        """Whether ``stored`` is an encrypted value rather than a secret from before encryption."""
        return stored.startswith(_TOKEN_PREFIX)

    def seal(self, secret: str) -> str:
        """``secret`` encrypted under the first key, for the database."""
        current, _ = self._keys()
        return current.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        """The secret behind a stored value (a plaintext row from before encryption as it is)."""
        if not self.is_sealed(stored):
            return stored
        _, every = self._keys()
        try:
            return every.decrypt(stored.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretBoxError(
                "a stored secret was encrypted with a key that is not in AIA_ENCRYPTION_KEYS "
                "(was a key removed before `aia secrets rotate` finished?)"
            ) from None

    def is_current(self, stored: str) -> bool:
        """Whether ``stored`` is already encrypted under the first key."""
        current, _ = self._keys()
        if not self.is_sealed(stored):
            return False
        try:
            current.decrypt(stored.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def reseal(self, stored: str) -> str:
        """``stored`` encrypted under the first key: a plaintext row encrypted, a token rotated."""
        return self.seal(self.open(stored))

    def _keys(self) -> tuple[Fernet, MultiFernet]:
        if self._current is None or self._all is None:
            raise SecretBoxError(
                "no AIA_ENCRYPTION_KEYS are set, so secrets cannot be stored or read; "
                "`aia dev` makes them, elsewhere " + _KEY_HELP
            )
        return self._current, self._all

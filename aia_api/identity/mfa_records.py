"""TOTP MFA records: enrolment, codes accepted once, disable and reset.

RFC 6238 section 5.2: a verifier must not accept the same code twice. The
last accepted time step is kept per account and moved on by an update
conditional on it being older, and a recovery code is spent by an update
conditional on the list being the one read; so of two uses of one code,
however close and from however many API processes, exactly one succeeds, on
SQLite as on PostgreSQL.

Blocking, like ``IdentityStore``, which hands its MFA methods to this.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import pyotp
from sqlalchemy import Text, cast, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from aia_api.identity.credentials import digest
from aia_workers.db.identity import RefreshToken, User
from aia_workers.errors import ConflictError

__all__ = ["MfaRecords"]

_RECOVERY_CODES = 10


def _now() -> datetime:
    return datetime.now(UTC)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step, one either side of now, whose TOTP code ``code`` is; None if none.

    The step is what makes a code spendable once (RFC 6238 section 5.2).
    """
    totp = pyotp.TOTP(secret)
    code = code.replace(" ", "")
    current = totp.timecode(now)
    # Newest first: of two steps with the same code, the later is the one to spend.
    for step in (current + 1, current, current - 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), code.encode()):
            return step
    return None


def _clear_mfa(session: Session, user_id: str) -> bool:
    """MFA off, its secret, codes and last step gone, every session ended; False if not on.

    Whoever turned it off may hold a session of the thief's: all of them go.
    """
    now = _now()
    result = session.execute(
        update(User)
        .where(User.id == user_id, User.mfa_enabled.is_(True))
        .values(mfa_enabled=False, mfa_secret=None, mfa_last_step=None, recovery_codes=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return True


class MfaRecords:
    """The MFA columns of ``users``; every method opens and commits its own transaction.

    ``seal`` turns a TOTP secret into what the database keeps, ``unseal``
    back: the only ways a secret is written or read.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        seal: Callable[[str], str],
        unseal: Callable[[str], str],
    ) -> None:
        self._sessions = sessions
        self._seal = seal
        self._unseal = unseal

    def start_mfa(self, user_id: str) -> tuple[str, str]:
        """A new TOTP secret (not yet in force) and its otpauth:// URI."""
        secret = pyotp.random_base32()
        with self._sessions.begin() as session:
            user = session.get(User, user_id)
            if user is None or user.deleted_at is not None:
                raise ConflictError("the account no longer exists")
            if user.mfa_enabled:
                raise ConflictError("MFA is already on for this account")
            user.mfa_secret = self._seal(secret)
            uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name="AIA")
        return secret, uri

    def confirm_mfa(self, user_id: str, code: str) -> list[str] | None:
        """Turn MFA on when ``code`` matches the pending secret; the recovery codes, once.

        The code's step counts as used: it cannot log in afterwards.
        """
        with self._sessions() as session:
            user = session.get(User, user_id)
            if user is None or user.deleted_at is not None or user.mfa_enabled:
                return None
            stored = user.mfa_secret
        if not stored:
            return None
        step = _matching_step(self._unseal(stored), code, _now())
        if step is None:
            return None
        codes = [secrets.token_hex(5) for _ in range(_RECOVERY_CODES)]
        with self._sessions.begin() as session:
            # Only the secret that was checked, and only once: a second enrolment
            # started meanwhile replaced it.
            result = session.execute(
                update(User)
                .where(
                    User.id == user_id,
                    User.mfa_enabled.is_(False),
                    User.mfa_secret == stored,
                )
                .values(
                    mfa_enabled=True,
                    mfa_last_step=step,
                    recovery_codes=[digest(c) for c in codes],
                )
                .execution_options(synchronize_session=False)
            )
        return codes if result.rowcount == 1 else None  # type: ignore[attr-defined]

    def check_second_factor(self, user_id: str, code: str) -> bool:
        """A TOTP code not used before, or an unused recovery code; either is then spent.

        Safe across processes: each spend is an update conditional on what was
        read, so of two uses of one code, however close, exactly one succeeds.
        """
        with self._sessions() as session:
            user = session.get(User, user_id)
            if user is None or user.deleted_at is not None or not user.mfa_enabled:
                return False
            stored = user.mfa_secret
        if not stored:
            return False
        step = _matching_step(self._unseal(stored), code, _now())
        if step is not None:
            return self._spend_step(user_id, step)
        return self._spend_recovery_code(user_id, digest(code.strip().lower()))

    def _spend_step(self, user_id: str, step: int) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(User)
                .where(
                    User.id == user_id,
                    User.mfa_enabled.is_(True),
                    or_(User.mfa_last_step.is_(None), User.mfa_last_step < step),
                )
                .values(mfa_last_step=step)
                .execution_options(synchronize_session=False)
            )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def _spend_recovery_code(self, user_id: str, wanted: str) -> bool:
        # The list is written back only if it is still the one read (compared
        # as text: PostgreSQL's json has no equality); when another code was
        # spent meanwhile, read again. Each retry follows someone else's spend,
        # so there are at most as many as there are codes.
        for _ in range(_RECOVERY_CODES + 1):
            with self._sessions() as session:
                read = session.scalars(
                    select(cast(User.recovery_codes, Text)).where(
                        User.id == user_id, User.mfa_enabled.is_(True)
                    )
                ).first()
            remaining = json.loads(read) if read else []
            if wanted not in remaining:
                return False
            remaining.remove(wanted)
            with self._sessions.begin() as session:
                result = session.execute(
                    update(User)
                    .where(User.id == user_id, cast(User.recovery_codes, Text) == read)
                    .values(recovery_codes=remaining)
                    .execution_options(synchronize_session=False)
                )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return True
        return False

    def disable_mfa(self, user_id: str) -> bool:
        """Turn MFA off and end the account's sessions; False when it was not on."""
        with self._sessions.begin() as session:
            return _clear_mfa(session, user_id)

    def reset_mfa(self, username: str, *, tenant: str | None) -> User | None:
        """An admin's disable, for someone who lost their device: the account, or None.

        Only in ``tenant`` (None: any, for the host's CLI). ConflictError when
        MFA is not on.
        """
        with self._sessions.begin() as session:
            stmt = select(User).where(User.username == username, User.deleted_at.is_(None))
            if tenant is not None:
                stmt = stmt.where(User.tenant_id == tenant)
            user = session.scalars(stmt).first()
            if user is None:
                return None
            if not _clear_mfa(session, user.id):
                raise ConflictError(f"MFA is not on for {username!r}: there is nothing to reset")
            return user

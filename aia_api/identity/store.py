"""Tenants, users, API keys and refresh tokens in the database.

Blocking (SQLAlchemy and argon2): the API calls it on worker threads, the CLI
directly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from aia_api.identity.credentials import digest, new_api_key, new_refresh_token
from aia_api.identity.mfa_records import MfaRecords
from aia_api.identity.passwords import hash_password, verify_password
from aia_api.identity.principal import Principal
from aia_api.identity.roles import Role
from aia_workers.db.identity import ApiKey, RefreshToken, Tenant, User
from aia_workers.errors import AiaError, ConflictError
from aia_workers.secretbox import SecretBox, SecretBoxError

__all__ = [
    "ActiveKey",
    "ActiveUser",
    "IdentityStore",
    "RefreshError",
    "RefreshReuseError",
    "Rotation",
]


class RefreshError(AiaError):
    """Raised when a refresh token is unknown, expired or revoked."""


class RefreshReuseError(RefreshError):
    """Raised when a refresh token is presented a second time; its family is revoked."""

    def __init__(self, message: str, *, user_id: str, tenant: str) -> None:
        super().__init__(message)
        self.user_id = user_id
        self.tenant = tenant


@dataclass(frozen=True, slots=True)
class ActiveUser:
    id: str
    tenant: str
    role: Role
    mfa_enabled: bool

    @property
    def principal(self) -> Principal:
        return Principal("user", self.id, self.tenant, self.role)

    def session_principal(self, *, mfa: bool) -> Principal:
        """The principal of a session that passed the second factor (``mfa``) or not.

        It counts only while MFA is on: a session from before a disable or a
        reset shows nothing.
        """
        return Principal("user", self.id, self.tenant, self.role, mfa=mfa and self.mfa_enabled)


@dataclass(frozen=True)
class ActiveKey:
    id: str
    tenant: str
    # At most the role of whoever made the key, as they are now.
    role: Role
    # The earliest expiry along the chain of makers.
    expires_at: datetime | None
    # Whose rights this key's derive from: the account (its id) or the keys
    # (their hashes) that made it, and theirs in turn. A change to any of them
    # drops this key from the caches.
    makers: frozenset[str] = frozenset()

    @cached_property
    def principal(self) -> Principal:
        # Built once per cached key: the hot path only looks it up.
        return Principal("key", self.id, self.tenant, self.role)


@dataclass(frozen=True, slots=True)
class Rotation:
    """A refresh token spent for a new one of its family."""

    user: ActiveUser
    refresh_token: str
    # The family began with a login that passed the second factor.
    mfa: bool


# A key made by a key made by a key...: deeper than this is refused, not followed.
_MAX_MAKERS = 8


def _now() -> datetime:
    return datetime.now(UTC)


def _spend(session: Session, token_id: str, now: datetime) -> bool:
    """Mark a refresh token used, unless it already is (or was revoked); whether it was."""
    result = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _usable(key: ApiKey | None, now: datetime) -> bool:
    return (
        key is not None
        and key.revoked_at is None
        and (key.expires_at is None or key.expires_at > now)
    )


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return a if b is None or (a is not None and a <= b) else b


def _revoke_family(session: Session, family_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


class IdentityStore:
    """Identity records; every method opens and commits its own transaction."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        refresh_ttl_seconds: int,
        box: SecretBox | None = None,
    ) -> None:
        """``box`` encrypts TOTP secrets; a store without one refuses the MFA methods."""
        self._sessions = sessions
        self._refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        self._box = box
        self._mfa = MfaRecords(sessions, seal=self._stored_mfa_secret, unseal=self._mfa_secret)

    def _mfa_box(self) -> SecretBox:
        if self._box is None:
            raise SecretBoxError("TOTP secrets are encrypted at rest: give IdentityStore a box")
        return self._box

    # -- tenants and users ------------------------------------------------------

    def ensure_tenant(self, tenant_id: str, name: str | None = None) -> None:
        with self._sessions.begin() as session:
            if session.get(Tenant, tenant_id) is None:
                session.add(Tenant(id=tenant_id, name=name or tenant_id, created_at=_now()))

    def create_user(self, *, tenant: str, username: str, password: str, role: Role) -> ActiveUser:
        password_hash = hash_password(password)
        with self._sessions.begin() as session:
            if session.get(Tenant, tenant) is None:
                raise ConflictError(f"there is no tenant {tenant!r}; create it first")
            taken = session.scalars(select(User.id).where(User.username == username)).first()
            if taken is not None:
                raise ConflictError(f"the username {username!r} is taken")
            user = User(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                username=username,
                password_hash=password_hash,
                role=role.value,
                mfa_enabled=False,
                created_at=_now(),
            )
            session.add(user)
            return ActiveUser(user.id, tenant, role, mfa_enabled=False)

    def set_role(self, username: str, role: Role) -> tuple[ActiveUser, Role] | None:
        """Change an account's role; the account and its former role, or None."""
        with self._sessions.begin() as session:
            user = session.scalars(
                select(User).where(User.username == username, User.deleted_at.is_(None))
            ).first()
            if user is None:
                return None
            former = Role(user.role)
            user.role = role.value
            return ActiveUser(user.id, user.tenant_id, role, user.mfa_enabled), former

    def delete_user(self, user_id: str) -> int:
        """Delete an account, end its sessions and revoke the keys it made; how many keys.

        Keys those keys made stop with them (see ``active_key``); every API
        process must still be told ``user:<id>`` to drop what it cached.
        """
        now = _now()
        with self._sessions.begin() as session:
            session.execute(
                update(User)
                .where(User.id == user_id, User.deleted_at.is_(None))
                .values(deleted_at=now)
            )
            session.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            revoked = session.execute(
                update(ApiKey)
                .where(ApiKey.created_by == user_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
            return int(revoked.rowcount)  # type: ignore[attr-defined]

    def find_user(self, username: str) -> ActiveUser | None:
        """The undeleted account of ``username``."""
        with self._sessions() as session:
            user = session.scalars(
                select(User).where(User.username == username, User.deleted_at.is_(None))
            ).first()
            if user is None:
                return None
            return ActiveUser(user.id, user.tenant_id, Role(user.role), user.mfa_enabled)

    def username_of(self, user_id: str) -> str | None:
        with self._sessions() as session:
            return session.scalars(
                select(User.username).where(User.id == user_id, User.deleted_at.is_(None))
            ).first()

    def check_password(self, user_id: str, password: str) -> bool:
        """Whether ``password`` is the account's: asked again before changing its MFA."""
        with self._sessions() as session:
            stored = session.scalars(
                select(User.password_hash).where(User.id == user_id, User.deleted_at.is_(None))
            ).first()
        return verify_password(stored, password)

    def has_users(self) -> bool:
        with self._sessions() as session:
            return session.scalars(select(User.id).limit(1)).first() is not None

    def authenticate(self, username: str, password: str) -> ActiveUser | None:
        """The user, when the password matches an undeleted account."""
        with self._sessions() as session:
            user = session.scalars(
                select(User).where(User.username == username, User.deleted_at.is_(None))
            ).first()
        if not verify_password(user.password_hash if user else None, password) or user is None:
            return None
        return ActiveUser(user.id, user.tenant_id, Role(user.role), user.mfa_enabled)

    def tenant_of_username(self, username: str) -> str | None:
        """The tenant of an account, for the audit log of a failed login."""
        with self._sessions() as session:
            return session.scalars(select(User.tenant_id).where(User.username == username)).first()

    def active_user(self, user_id: str) -> ActiveUser | None:
        with self._sessions() as session:
            user = session.get(User, user_id)
            if user is None or user.deleted_at is not None:
                return None
            return ActiveUser(user.id, user.tenant_id, Role(user.role), user.mfa_enabled)

    # -- MFA ----------------------------------------------------------------------

    # Every read and write of a TOTP secret goes through these two (MfaRecords
    # is given them as its seal and unseal).

    def _stored_mfa_secret(self, secret: str) -> str:
        """What the database keeps for ``secret``."""
        return self._mfa_box().seal(secret)

    def _mfa_secret(self, stored: str) -> str:
        """The secret the database keeps as ``stored``."""
        return self._mfa_box().open(stored)

    def start_mfa(self, user_id: str) -> tuple[str, str]:
        """A new TOTP secret (not yet in force) and its otpauth:// URI."""
        return self._mfa.start_mfa(user_id)

    def confirm_mfa(self, user_id: str, code: str) -> list[str] | None:
        """Turn MFA on when ``code`` matches the pending secret; the recovery codes, once."""
        return self._mfa.confirm_mfa(user_id, code)

    def check_second_factor(self, user_id: str, code: str) -> bool:
        """A TOTP code not used before, or an unused recovery code; either is then spent."""
        return self._mfa.check_second_factor(user_id, code)

    def disable_mfa(self, user_id: str) -> bool:
        """Turn MFA off and end the account's sessions; False when it was not on."""
        return self._mfa.disable_mfa(user_id)

    def reset_mfa(self, username: str, *, tenant: str | None) -> ActiveUser | None:
        """An admin's disable (in ``tenant``; None: any): the account, or None when unknown.

        ConflictError when MFA is not on.
        """
        user = self._mfa.reset_mfa(username, tenant=tenant)
        if user is None:
            return None
        return ActiveUser(user.id, user.tenant_id, Role(user.role), mfa_enabled=False)

    # -- API keys ---------------------------------------------------------------

    def create_key(
        self,
        *,
        tenant: str,
        name: str,
        role: Role,
        created_by: str | None,
        lifetime: timedelta | None = None,
    ) -> tuple[ApiKey, str]:
        """The key's record and, once only, the key itself.

        ``created_by`` is the account or key that makes it (None: the host's
        CLI); ``lifetime`` None means it never expires. A key made by a key
        expires no later than its maker.
        """
        plaintext = new_api_key()
        now = _now()
        expires_at = now + lifetime if lifetime is not None else None
        with self._sessions.begin() as session:
            if session.get(Tenant, tenant) is None:
                raise ConflictError(f"there is no tenant {tenant!r}; create it first")
            maker = session.get(ApiKey, created_by) if created_by is not None else None
            if maker is not None:
                expires_at = _earliest(expires_at, maker.expires_at)
            record = ApiKey(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                name=name,
                key_hash=digest(plaintext),
                prefix=plaintext[:12],
                role=role.value,
                created_by=created_by,
                created_at=now,
                expires_at=expires_at,
            )
            session.add(record)
        return record, plaintext

    def active_key(self, key_hash: str) -> ActiveKey | None:
        """The key as it may act now, or None.

        A key has at most the current role of the account that made it, and
        stops when that account is deleted; a key made by a key, at most what
        its maker may do now, and stops when it is revoked or expires. Keys
        made on the host (no maker) keep their role.
        """
        now = _now()
        with self._sessions() as session:
            key = session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()
            if key is None or not _usable(key, now):
                return None
            role, expires_at, makers = Role(key.role), key.expires_at, set[str]()
            maker_id = key.created_by
            for _ in range(_MAX_MAKERS):
                if maker_id is None:
                    return ActiveKey(key.id, key.tenant_id, role, expires_at, frozenset(makers))
                user = session.get(User, maker_id)
                if user is not None:
                    if user.deleted_at is not None or user.tenant_id != key.tenant_id:
                        return None
                    makers.add(user.id)
                    role = role.at_most(Role(user.role))
                    return ActiveKey(key.id, key.tenant_id, role, expires_at, frozenset(makers))
                maker = session.get(ApiKey, maker_id)
                if maker is None or not _usable(maker, now) or maker.tenant_id != key.tenant_id:
                    return None
                makers.add(maker.key_hash)
                role = role.at_most(Role(maker.role))
                expires_at = _earliest(expires_at, maker.expires_at)
                maker_id = maker.created_by
        return None

    def list_keys(self, tenant: str, created_by: str | None = None) -> list[ApiKey]:
        """The tenant's keys, or only those ``created_by`` made."""
        stmt = select(ApiKey).where(ApiKey.tenant_id == tenant)
        if created_by is not None:
            stmt = stmt.where(ApiKey.created_by == created_by)
        with self._sessions() as session:
            return list(session.scalars(stmt.order_by(ApiKey.created_at)))

    def revoke_key(self, tenant: str, key_id: str, created_by: str | None = None) -> str | None:
        """Revoke the key; its hash (for cache invalidation), or None when not found."""
        stmt = select(ApiKey).where(ApiKey.tenant_id == tenant, ApiKey.id == key_id)
        if created_by is not None:
            stmt = stmt.where(ApiKey.created_by == created_by)
        with self._sessions.begin() as session:
            key = session.scalars(stmt).first()
            if key is None:
                return None
            if key.revoked_at is None:
                key.revoked_at = _now()
            return key.key_hash

    # -- refresh tokens -----------------------------------------------------------

    def _add_refresh(self, session: Session, user_id: str, family_id: str, mfa: bool) -> str:
        plaintext = new_refresh_token()
        now = _now()
        session.add(
            RefreshToken(
                id=str(uuid.uuid4()),
                family_id=family_id,
                user_id=user_id,
                token_hash=digest(plaintext),
                created_at=now,
                expires_at=now + self._refresh_ttl,
                mfa=mfa,
            )
        )
        return plaintext

    def issue_refresh(
        self, user_id: str, family_id: str | None = None, *, mfa: bool = False
    ) -> str:
        """A refresh token; ``mfa`` when the login it comes from passed the second factor."""
        with self._sessions.begin() as session:
            return self._add_refresh(session, user_id, family_id or str(uuid.uuid4()), mfa)

    def rotate_refresh(self, plaintext: str) -> Rotation:
        """Spend ``plaintext`` for a new token of the same family.

        A token that was already spent means it was stolen (or replayed): the
        whole family is revoked, committed, and RefreshReuseError raised. Two
        refreshes of one token at the same moment are no different: the spend
        is an update conditional on the token being unspent, so exactly one
        wins, on SQLite (which has no FOR UPDATE) as on PostgreSQL, and the
        other revokes the family. The new token is written in the spend's
        transaction, so that revocation cannot miss it.
        """
        now = _now()
        refusal: RefreshError | None = None
        with self._sessions.begin() as session:
            token = session.scalars(
                select(RefreshToken).where(RefreshToken.token_hash == digest(plaintext))
            ).first()
            if token is None:
                raise RefreshError("the refresh token is not known")
            user = session.get(User, token.user_id)
            reuse = RefreshReuseError(
                "this refresh token was already used; every session it belongs to "
                "has been revoked. Log in again.",
                user_id=token.user_id,
                tenant=user.tenant_id if user is not None else "",
            )
            if token.used_at is not None or token.revoked_at is not None:
                _revoke_family(session, token.family_id, now)
                # Raised after the commit, so the revocation stands.
                refusal = (
                    reuse
                    if token.used_at is not None
                    else RefreshError("the refresh token was revoked; log in again")
                )
            elif token.expires_at <= now:
                refusal = RefreshError("the refresh token has expired; log in again")
            elif user is None or user.deleted_at is not None:
                refusal = RefreshError("the account no longer exists")
            elif not _spend(session, token.id, now):
                # Spent (or revoked) by another request since it was read above.
                _revoke_family(session, token.family_id, now)
                refusal = reuse
            else:
                active = ActiveUser(user.id, user.tenant_id, Role(user.role), user.mfa_enabled)
                mfa = token.mfa
                rotated = self._add_refresh(session, user.id, token.family_id, mfa)
        if refusal is not None:
            raise refusal
        return Rotation(active, rotated, mfa)

    def revoke_refresh(self, plaintext: str) -> bool:
        """Log out: revoke the family of ``plaintext``; False when it is unknown."""
        with self._sessions.begin() as session:
            token = session.scalars(
                select(RefreshToken).where(RefreshToken.token_hash == digest(plaintext))
            ).first()
            if token is None:
                return False
            session.execute(
                update(RefreshToken)
                .where(RefreshToken.family_id == token.family_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            return True

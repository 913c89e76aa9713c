"""``aia users`` and ``aia keys``, and the credentials ``aia dev`` keeps in the data home."""

from __future__ import annotations

import getpass
import json
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis

from aia_api.identity.auditlog import AuditLog
from aia_api.identity.authenticator import INVALIDATION_CHANNEL
from aia_api.identity.passwords import PasswordPolicyError, check_policy
from aia_api.identity.roles import Role
from aia_api.identity.store import IdentityStore
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.errors import ConflictError
from aia_workers.settings import Settings

__all__ = [
    "bootstrap_dev_credentials",
    "create_key",
    "create_user",
    "credentials_path",
    "delete_user",
    "dev_secret",
    "read_credentials",
    "reset_mfa",
    "set_role",
    "write_credentials",
]


def _store(settings: Settings) -> IdentityStore:
    engine = make_engine(settings)
    return IdentityStore(
        make_sessionmaker(engine), refresh_ttl_seconds=settings.refresh_token_ttl_seconds
    )


def create_user(
    settings: Settings, *, tenant: str, username: str, role: str, password_stdin: bool
) -> int:
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass()
    try:
        check_policy(password)
    except PasswordPolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    store = _store(settings)
    store.ensure_tenant(tenant)
    try:
        user = store.create_user(
            tenant=tenant, username=username, password=password, role=Role(role)
        )
    except ConflictError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"created {role} {username} ({user.id}) in tenant {tenant}")
    return 0


def _announce(settings: Settings, user_id: str) -> None:
    """Make every API process forget what it cached of the account and of its keys."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    try:
        client.publish(INVALIDATION_CHANNEL, json.dumps({"m": f"user:{user_id}"}))
    except redis.RedisError as exc:
        print(
            f"warning: API processes will see the change within their cache time ({exc})",
            file=sys.stderr,
        )
    finally:
        client.close()


def set_role(settings: Settings, *, username: str, role: str) -> int:
    """Change a user's role (and so of the keys they made), record it, tell every API process."""
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    store = IdentityStore(sessions, refresh_ttl_seconds=settings.refresh_token_ttl_seconds)
    changed = store.set_role(username, Role(role))
    if changed is None:
        print(f"there is no user {username!r}", file=sys.stderr)
        return 2
    user, former = changed
    AuditLog(sessions).record_now(
        "role.change",
        "success",
        tenant=user.tenant,
        actor="cli",
        detail={"user_id": user.id, "username": username, "from": former.value, "to": role},
    )
    _announce(settings, user.id)
    print(f"{username}: {former.value} -> {role}")
    return 0


def delete_user(settings: Settings, *, username: str) -> int:
    """Delete an account: its sessions end and its keys are revoked, at once everywhere."""
    sessions = make_sessionmaker(make_engine(settings))
    store = IdentityStore(sessions, refresh_ttl_seconds=settings.refresh_token_ttl_seconds)
    user = store.find_user(username)
    if user is None:
        print(f"there is no user {username!r}", file=sys.stderr)
        return 2
    keys = store.delete_user(user.id)
    AuditLog(sessions).record_now(
        "user.delete",
        "success",
        tenant=user.tenant,
        actor="cli",
        detail={"user_id": user.id, "username": username, "keys_revoked": keys},
    )
    _announce(settings, user.id)
    print(f"deleted {username}; {keys} of their API keys revoked")
    return 0


def reset_mfa(settings: Settings, *, username: str) -> int:
    """Turn a user's MFA off (a lost device, and no admin to ask) and end their sessions."""
    sessions = make_sessionmaker(make_engine(settings))
    store = IdentityStore(sessions, refresh_ttl_seconds=settings.refresh_token_ttl_seconds)
    try:
        user = store.reset_mfa(username, tenant=None)
    except ConflictError as exc:
        print(exc, file=sys.stderr)
        return 2
    if user is None:
        print(f"there is no user {username!r}", file=sys.stderr)
        return 2
    AuditLog(sessions).record_now(
        "mfa.reset",
        "success",
        tenant=user.tenant,
        actor="cli",
        detail={"user_id": user.id, "username": username, "sessions_revoked": True},
    )
    _announce(settings, user.id)
    print(f"{username}: MFA is off and every session ended; they can enroll again")
    return 0


def create_key(
    settings: Settings,
    *,
    tenant: str,
    name: str,
    role: str,
    expires_in_days: int | None = None,
    never_expires: bool = False,
) -> int:
    """A key made on the host: any role and lifetime (by default AIA_API_KEY_DEFAULT_DAYS)."""
    if expires_in_days is not None and expires_in_days < 1:
        print("--expires-in-days must be 1 or more (or use --never-expires)", file=sys.stderr)
        return 2
    store = _store(settings)
    store.ensure_tenant(tenant)
    days = expires_in_days or settings.api_key_default_days
    record, plaintext = store.create_key(
        tenant=tenant,
        name=name,
        role=Role(role),
        created_by=None,
        lifetime=None if never_expires else timedelta(days=days),
    )
    until = record.expires_at.date().isoformat() if record.expires_at else "never"
    print(
        f"created {role} key {name} ({record.id}) in tenant {tenant}, expiring {until}; "
        "it is shown once:",
        file=sys.stderr,
    )
    print(plaintext)
    return 0


def credentials_path(settings: Settings) -> Path:
    return settings.data_home / "credentials.json"


def read_credentials(settings: Settings) -> dict[str, Any]:
    """What ``aia dev`` stored for the CLI, or {} when there is nothing."""
    try:
        return dict(json.loads(_read_private(credentials_path(settings))))
    except (OSError, ValueError):
        return {}


def write_credentials(settings: Settings, credentials: dict[str, Any]) -> None:
    """Keep ``credentials`` for the CLI, readable by this user alone."""
    _write_private(credentials_path(settings), json.dumps(credentials, indent=2))


def dev_secret(settings: Settings) -> str:
    """The dev secret key, made once and kept in the data home."""
    path = settings.data_home / "secret_key"
    if path.exists():
        return _read_private(path).strip()
    secret = secrets.token_urlsafe(48)
    _write_private(path, secret)
    return secret


def bootstrap_dev_credentials(settings: Settings, api_url: str) -> dict[str, Any] | None:
    """On a database with no users: an admin and an API key, kept for the CLI.

    Returns the new credentials (to print once), or None when users exist.
    """
    store = _store(settings)
    if store.has_users():
        return None
    tenant = "default"
    store.ensure_tenant(tenant)
    password = secrets.token_urlsafe(18)
    store.create_user(tenant=tenant, username="admin", password=password, role=Role.ADMIN)
    # The CLI's own key on a development machine: it must not stop working one day.
    _, key = store.create_key(
        tenant=tenant, name="aia dev", role=Role.ADMIN, created_by=None, lifetime=None
    )
    # Added to what is kept there already (the keys that read this database's secrets).
    credentials = {
        **read_credentials(settings),
        "api_url": api_url,
        "username": "admin",
        "password": password,
        "api_key": key,
    }
    write_credentials(settings, credentials)
    return credentials


def _read_private(path: Path) -> str:
    # A file an older version left readable by others is made private on sight.
    path.chmod(0o600)
    return path.read_text()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # O_CREAT's mode applies to a new file only: an existing one is made private here.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)

"""What the routes share, made in the app's lifespan and kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from aia_api.identity.auditlog import AuditLog
from aia_api.identity.authenticator import Authenticator
from aia_api.identity.browser import BrowserSessions
from aia_api.identity.limits import RateLimiter
from aia_api.identity.store import IdentityStore
from aia_api.identity.throttle import LoginThrottle
from aia_api.ops.metrics import ApiMetrics
from aia_api.tasks.hub import Hub
from aia_api.tasks.service import TaskService
from aia_api.tasks.streaming.guard import StreamGuard
from aia_workers.ml.artifacts import ArtifactStore
from aia_workers.secretbox import SecretBox
from aia_workers.settings import Settings

__all__ = ["Services", "services"]


@dataclass(slots=True)
class Services:
    settings: Settings
    redis: aioredis.Redis
    engine: Engine
    celery: Celery
    tasks: TaskService
    hub: Hub
    streams: StreamGuard
    metrics: ApiMetrics
    identity: IdentityStore
    auth: Authenticator
    limiter: RateLimiter
    logins: LoginThrottle
    audit: AuditLog
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    box: SecretBox
    browser: BrowserSessions


def services(conn: HTTPConnection) -> Services:
    return conn.app.state.services  # type: ignore[no-any-return]

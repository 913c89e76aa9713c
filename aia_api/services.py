"""What the routes share, made in the app's lifespan and kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from aia_api.auth.audit import AuditLog
from aia_api.auth.limits import RateLimiter
from aia_api.auth.principal import Authenticator
from aia_api.auth.store import IdentityStore
from aia_api.auth.throttle import LoginThrottle
from aia_api.hub import Hub
from aia_api.metrics import ApiMetrics
from aia_api.streaming.guard import StreamGuard
from aia_api.taskservice import TaskService
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


def services(conn: HTTPConnection) -> Services:
    return conn.app.state.services  # type: ignore[no-any-return]

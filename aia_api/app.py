"""The Starlette application: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Callable

import orjson
import redis.asyncio as aioredis
from opentelemetry.trace import Tracer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from aia_api.agents import routes as agents
from aia_api.http.accesslog import redact_server_logs
from aia_api.http.problems import exception_handlers
from aia_api.http.security_headers import SecureStarlette
from aia_api.http.tracing import TracingMiddleware
from aia_api.identity import routes as identity
from aia_api.identity.auditlog import AuditLog
from aia_api.identity.authenticator import INVALIDATION_CHANNEL, Authenticator
from aia_api.identity.browser import BrowserSessions
from aia_api.identity.limits import AddressFailures, RateLimiter
from aia_api.identity.middleware import AuthMiddleware
from aia_api.identity.store import IdentityStore
from aia_api.identity.throttle import LoginPolicy, LoginThrottle
from aia_api.identity.tokens import TokenCodec
from aia_api.ml import routes as ml
from aia_api.ops import routes as ops
from aia_api.ops.metrics import ApiMetrics, MetricsMiddleware
from aia_api.schedules import routes as schedules
from aia_api.services import Services
from aia_api.tasks import routes as tasks
from aia_api.tasks.hub import Hub, Subscription
from aia_api.tasks.service import TaskService
from aia_api.tasks.streaming.guard import StreamGuard
from aia_api.tasks.streaming.slots import StreamSlots
from aia_api.ui import routes as ui
from aia_api.webhooks import routes as webhooks
from aia_api.workflows import routes as workflows
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.ml.artifacts import LocalArtifactStore
from aia_workers.secretbox import SecretBox
from aia_workers.settings import Settings, get_settings
from aia_workers.tracing.runtime import configure_tracing, flush

__all__ = ["ROUTES", "create_app", "create_app_from_env"]

log = logging.getLogger(__name__)

# One line per domain: each package's routes module lists its own.
ROUTES = [
    *tasks.routes,
    *identity.routes,
    *ml.routes,
    *webhooks.routes,
    *schedules.routes,
    *agents.routes,
    *workflows.routes,
    *ops.routes,
    *ui.routes,
]


def _redis(settings: Settings, *, retries: int) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=Retry(NoBackoff(), retries),
        max_connections=512,
    )


def create_app(settings: Settings, *, tracer: Tracer | None = None) -> Starlette:
    """The API for ``settings``; clients and pools are made when it starts.

    Refuses (InsecureSettingsError) a missing or placeholder secret, or missing
    encryption keys, outside dev mode. Requests and enqueues are spans of
    ``tracer``, or of the exporter Settings name (none: tracing is off).
    """
    settings.check_secret()
    tracer = tracer or configure_tracing(settings, "aia-api")
    box = SecretBox.from_settings(settings)
    # Dev mode without a secret: tokens last as long as this process.
    secret = settings.secret_key or secrets.token_urlsafe(48)
    metrics = ApiMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from aia_workers.backbone.app import create_celery_app

        celery_app = create_celery_app()

        client = _redis(settings, retries=1)
        # The hub must see a dropped connection rather than retry past lost messages.
        hub_client = _redis(settings, retries=0)
        engine = make_engine(settings)
        sessions = make_sessionmaker(engine)
        hub = Hub(hub_client)
        identity = IdentityStore(
            sessions, refresh_ttl_seconds=settings.refresh_token_ttl_seconds, box=box
        )

        async def announce(message: str) -> None:
            await client.publish(INVALIDATION_CHANNEL, orjson.dumps({"m": message}))

        auth = Authenticator(
            TokenCodec(
                secret,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                ttl_seconds=settings.access_token_ttl_seconds,
            ),
            identity,
            cache_seconds=settings.auth_cache_seconds,
            stale_seconds=settings.auth_stale_seconds,
            publish=announce,
            failures=AddressFailures(client, per_minute=settings.auth_failures_per_minute),
        )
        limiter = RateLimiter(client)
        guard = StreamGuard(
            StreamSlots(
                client,
                limit=settings.stream_max_connections,
                lease_seconds=settings.stream_lease_seconds,
            ),
            auth,
            recheck_seconds=settings.stream_recheck_seconds,
        )
        app.state.services = Services(
            settings=settings,
            redis=client,
            engine=engine,
            celery=celery_app,
            tasks=TaskService(settings, client, sessions, celery_app, tracer=tracer),
            hub=hub,
            streams=guard,
            metrics=metrics,
            identity=identity,
            auth=auth,
            limiter=limiter,
            audit=AuditLog(sessions),
            sessions=sessions,
            artifacts=LocalArtifactStore(settings.artifact_root),
            box=box,
            browser=BrowserSessions(secret),
            logins=LoginThrottle(client, LoginPolicy.from_settings(settings)),
        )
        listener = asyncio.create_task(
            _follow_revocations(hub, auth, guard), name="aia-revocations"
        )
        _tune_gc()
        try:
            yield
        finally:
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener
            await limiter.close()
            await guard.stop()
            await hub.close()
            await hub_client.aclose()
            await client.aclose()
            engine.dispose()
            flush()

    redact_server_logs()
    return SecureStarlette(
        routes=ROUTES,
        middleware=[
            *_proxy_headers(settings),
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(
                AuthMiddleware,
                public_paths=(
                    "/health",
                    "/metrics",
                    "/openapi.json",
                    "/docs",
                    *identity.PUBLIC_PATHS,
                    *ui.PUBLIC_PATHS,
                ),
                public_prefixes=ui.PUBLIC_PREFIXES,
            ),
        ],
        exception_handlers=exception_handlers(settings.retry_after_seconds),
        lifespan=lifespan,
        outermost=_tracing(tracer),
    )


async def _follow_revocations(hub: Hub, auth: Authenticator, guard: StreamGuard) -> None:
    """Clear cached credentials that any API process revoked; check open streams again."""
    while True:
        sub = Subscription(1024)
        try:
            await hub.attach(sub, INVALIDATION_CHANNEL)
            # Whatever was revoked while nobody here listened is forgotten too.
            auth.forget("all")
            guard.revoked("all")
            while True:
                for item in await sub.get():
                    message = str(item.get("m", "all"))
                    auth.forget(message)
                    guard.revoked(message)
        except asyncio.CancelledError:
            await hub.detach(sub)
            raise
        except Exception as exc:
            log.warning("not following credential revocations (%s); retrying", exc)
            auth.forget("all")
            await asyncio.sleep(1.0)


def _proxy_headers(settings: Settings) -> list[Middleware]:
    """Believe X-Forwarded-For and X-Forwarded-Proto from the trusted proxies only.

    The client is then the rightmost hop that is not one of them: what a
    client writes into the header itself sits further left and is ignored.
    ``aia api`` turns uvicorn's own handling off, which would otherwise trust
    127.0.0.1 whatever AIA_TRUSTED_PROXIES says.
    """
    if not settings.trusted_proxies:
        return []
    trusted = [str(network) for network in settings.trusted_proxies]
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)]


def _tracing(tracer: Tracer | None) -> list[Callable[[ASGIApp], ASGIApp]]:
    # Off, the middleware is not there at all: a request pays nothing for it.
    if tracer is None:
        return []
    return [lambda app: TracingMiddleware(app, tracer)]


def _tune_gc() -> None:
    # Every request allocates thousands of short-lived objects; with CPython's
    # default thresholds the collector walks the whole heap often enough to put
    # a 40 ms stall into the p99 of the submit path (bench/submit_throughput.py:
    # p99 64 -> 22 ms). What exists at start-up is frozen out of collections,
    # and young objects get room to die before the collector looks at them.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def create_app_from_env() -> Starlette:
    """For ``uvicorn --factory aia_api.app:create_app_from_env``."""
    return create_app(get_settings())

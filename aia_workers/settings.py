"""One typed Settings object, read once from ``AIA_*`` environment variables.

The API, the workers, beat and the CLI all build their view of the world from
this object; no other module reads ``os.environ``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, IPvAnyNetwork, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aia_workers.backbone.states import Queue
from aia_workers.scheduling.contracts import SystemSchedule

__all__ = ["DEFAULT_TENANT", "InsecureSettingsError", "Settings", "get_settings"]

DEFAULT_TENANT = "default"


def _default_data_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "aia"


_PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "default"})
_MIN_SECRET_LENGTH = 32


class InsecureSettingsError(ValueError):
    """Raised at start-up when a production process would run with a weak secret."""


class Settings(BaseSettings):
    """Everything AIA can be told, with defaults that serve a single machine."""

    model_config = SettingsConfigDict(env_prefix="AIA_", extra="ignore", frozen=True)

    data_home: Path = Field(default_factory=_default_data_home)
    # Datasets and model files; the API and every ml worker must see the same
    # folder (a shared volume when they run on several machines).
    artifacts_dir: Path | None = None
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = ""
    result_backend: str = ""
    secret_key: str = ""
    # Fernet keys for the secrets kept in the database (TOTP seeds, webhook
    # signing secrets), so that a dump alone reveals none. The first encrypts,
    # every one decrypts: rotate by putting a new key first and running
    # `aia secrets rotate`. A JSON list in the env; required outside dev mode.
    encryption_keys: list[str] = Field(default_factory=list)
    # Signs each model file (HMAC-SHA256), so that write access to the database
    # alone cannot make an ml worker unpickle a file of its choosing. Only the
    # ml workers and the API hold it; required outside dev mode.
    artifact_key: str = ""
    dev: bool = False

    jwt_issuer: str = "aia"
    jwt_audience: str = "aia-api"
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=300)
    # How long a process trusts a cached API key or account; revocation clears it at once.
    auth_cache_seconds: float = Field(default=30.0, ge=0)
    # While the database cannot be reached, a credential it verified up to this
    # long ago still serves, so callers seen recently ride out an outage; one
    # never verified, or verified longer ago, gets 503 until it is back.
    auth_stale_seconds: float = Field(default=300.0, ge=0)
    # When set, Prometheus may scrape /metrics with this bearer token alone.
    metrics_token: str = ""
    # A key lives this many days unless its maker says otherwise, so a
    # forgotten one does not work for ever; only an admin may ask for longer,
    # and never past the max (0: no max, so an admin may make one that never
    # expires). Keys made with `aia keys create` on the host may, always.
    api_key_default_days: int = Field(default=90, ge=1, le=36_500)
    api_key_max_days: int = Field(default=365, ge=0, le=36_500)

    rate_limit_per_minute: int = Field(default=60_000, ge=1)
    # The public login routes, per client address.
    auth_rate_limit_per_minute: int = Field(default=30, ge=1)
    # Failed logins allowed before each further try must wait, the wait doubling
    # from login_delay_seconds to login_max_delay_seconds: a slow-down rather
    # than a lock, so a stranger cannot shut an owner out. Budgets per account
    # and client address (the strictest), per account from addresses it has not
    # logged in from lately (a distributed guess), and per address (spraying).
    login_max_failures: int = Field(default=5, ge=1)
    login_account_max_failures: int = Field(default=20, ge=1)
    login_address_max_failures: int = Field(default=20, ge=1)
    login_delay_seconds: float = Field(default=30.0, gt=0)
    login_max_delay_seconds: float = Field(default=900.0, gt=0)
    # A count is forgotten this long after its last failure's wait ran out.
    login_failure_window_seconds: int = Field(default=900, ge=1)
    # Failed authentications (bad API keys or tokens) per client address per
    # minute before the address gets 429: unknown credentials cost a database
    # lookup each, so they are budgeted before the lookup.
    auth_failures_per_minute: int = Field(default=60, ge=1)
    # Peers (CIDRs or addresses, JSON in the env) whose X-Forwarded-For is
    # believed: the client is the rightmost hop not in this list. Empty: the
    # TCP peer is the client, whatever the headers say.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    tenant_max_inflight: int = Field(default=10_000, ge=1)
    # Tasks one tenant may run at once on each queue, across every worker, so
    # that one tenant cannot fill a queue's workers while others wait (JSON in
    # the env, e.g. {"ml": 2, "agents": 8}, replacing this map); queues it does
    # not name take the default; 0 lifts a cap. A start over it puts the task
    # back to wait, still queued (aia_workers/backbone/fairness.py).
    tenant_queue_concurrency: dict[Queue, Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: {Queue.ML: 2, Queue.AGENTS: 8, Queue.DRIFT: 4}
    )
    tenant_concurrency_default: int = Field(default=16, ge=0)
    # A running task's slot lapses this long after its process last renewed it,
    # so a killed worker's slots come back by themselves (renewed 3 times per lease).
    tenant_slot_lease_seconds: float = Field(default=60.0, ge=1)
    # An agent run's slot (its agent's max_concurrency) lapses this long after its
    # process last renewed it, so a killed worker's runs free their agents' slots.
    agent_slot_lease_seconds: float = Field(default=30.0, ge=0.5)
    # A run handed a freed slot whose message has not started it after this long
    # is sent again (the first message was lost with the process sending it).
    agent_handover_seconds: float = Field(default=120.0, ge=1)
    # The shortest wait of a task put back over its tenant's cap; waits grow
    # with the tenant's backlog so that waiting tasks cost a few checks a second.
    tenant_defer_seconds: float = Field(default=2.0, ge=0.05, le=60)
    # The highest priority an operator may give a task (admins: 9), so that no
    # tenant can put its work ahead of everyone else's.
    operator_max_priority: int = Field(default=5, ge=0, le=9)
    # The longest diagnostics.sleep anyone but an admin may ask for: the
    # smoke test needs seconds, and a long one only holds a worker.
    diagnostics_sleep_max_seconds: float = Field(default=60.0, ge=0, le=600)
    # "user:password" for Flower's basic auth; required outside dev mode.
    flower_basic_auth: str = ""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    flower_port: int = 5555

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_dataset_bytes: int = Field(default=50 * 1_048_576, ge=1024)
    # The largest file a research corpus takes (text, Markdown, HTML, CSV).
    agent_document_max_bytes: int = Field(default=10 * 1_048_576, ge=1024)
    # The largest body of a message to an agent (its JSON, in bytes), over the API or from a run.
    agent_message_max_bytes: int = Field(default=64 * 1024, ge=256, le=1_048_576)
    # Corpus indexes each agents worker process keeps built, most recently used first.
    research_index_cache_size: int = Field(default=16, ge=1, le=1_000)
    # What one tenant may keep on the artifact store (datasets, model files, documents);
    # an upload that would pass it is refused.
    tenant_storage_bytes: int = Field(default=10 * 1024**3, ge=1024)
    # Models each ml worker process keeps loaded, most recently used first.
    model_cache_size: int = Field(default=8, ge=1, le=1_000)
    # The share of predicted rows logged for drift checks, and how many are kept per version.
    prediction_log_sample_rate: float = Field(default=0.1, ge=0, le=1)
    prediction_log_max_rows: int = Field(default=10_000, ge=0)
    # Training rows kept with each version as the reference sample of its drift
    # checks (a seeded random sample); the tests switch method at 1,000 rows.
    drift_reference_rows: int = Field(default=5_000, ge=1, le=1_000_000)
    # A drift check refuses a window of fewer current rows: below it a test has
    # too little to go on, and a verdict either way would mislead.
    drift_min_current_rows: int = Field(default=100, ge=1)
    # The longest time budget an experiment may ask for; ml.train's hard limit
    # (5400 s) leaves room beyond it to load the data and store the model.
    ml_max_time_budget_seconds: float = Field(default=3600, gt=0, le=4800)
    # MiB of memory one ml task may allocate on top of what its process holds:
    # past it the task fails with a clear error instead of the host's OOM
    # killer taking the worker or a neighbour. Sized for a 24 GiB host running
    # one ml task beside the other workers; 0 leaves tasks uncapped.
    ml_task_memory_mb: int = Field(default=8192, ge=0)
    # The largest models an experiment may ask for: trees per forest (or
    # boosting rounds), units per MLP hidden layer, MLP epochs.
    ml_max_trees: int = Field(default=1000, ge=1)
    ml_max_hidden_units: int = Field(default=1024, ge=1)
    ml_max_epochs: int = Field(default=1000, ge=1)
    # Webhooks: the retry schedule after each failed attempt (seconds, jittered),
    # the per-request timeout, how much of a reply is kept, when a failing
    # endpoint is disabled, and where deliveries may go despite the SSRF guard.
    webhook_retry_schedule: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    webhook_response_body_bytes: int = Field(default=4096, ge=0, le=1_048_576)
    webhook_disable_after_seconds: float = Field(default=5 * 86_400, gt=0)
    webhook_secret_grace_seconds: float = Field(default=86_400, ge=0)
    webhook_relay_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # The whole of one delivery attempt (DNS, connect, TLS, request and reply),
    # however slowly the receiver sends: the timeout above bounds each wait
    # only, and a threads pool enforces no task time limit. At most 150 s, under
    # the task's soft limit of 170 s that a prefork pool does enforce.
    webhook_deadline_seconds: float = Field(default=30.0, gt=0, le=150)
    # Endpoints one tenant may register.
    webhook_tenant_max_endpoints: int = Field(default=50, ge=1)
    # One tenant's deliveries in flight at once; the rest wait in the outbox, so
    # a tenant's slow receivers hold at most this many webhooks worker threads
    # (a quarter of one worker's 64) and never starve the other tenants.
    webhook_tenant_max_inflight: int = Field(default=16, ge=1)
    # CIDRs or addresses exempt from the SSRF guard, e.g. ["10.0.0.0/8"]; JSON in the env.
    webhook_allowed_networks: list[str] = Field(default_factory=list)
    max_countdown_seconds: int = Field(default=3600, ge=0)
    # A task whose worker process is lost this many times (killed, crashed, out
    # of memory) is failed and kept as a dead letter instead of redelivered
    # forever; 0 never quarantines.
    poison_max_losses: int = Field(default=3, ge=0, le=1_000)
    # Redis as broker: how soon a message taken by a worker that has since died
    # goes back on its queue. A live worker keeps re-scoring the messages it
    # holds (aia_workers/backbone/visibility.py), so this need not outlast any task;
    # only a worker cut off from Redis for longer than this has its tasks
    # handed to another.
    visibility_timeout_seconds: int = Field(default=120, ge=4)
    # RabbitMQ closes a channel holding a delivery unacknowledged for longer than
    # this, so it must outlast the longest time limit plus the longest countdown.
    # A queue keeps the value it was declared with: changing it means deleting
    # the queues (RabbitMQ refuses a redeclaration with other arguments).
    rabbitmq_consumer_timeout_seconds: int = Field(default=21_600, ge=60)
    result_expires_seconds: int = Field(default=7 * 86_400, ge=60)

    task_ttl_seconds: int = Field(default=7 * 86_400, ge=60)
    events_per_task: int = Field(default=1_000, ge=10)
    recorder_stream_maxlen: int = Field(default=1_000_000, ge=1_000)
    recorder_batch: int = Field(default=500, ge=1)
    recorder_linger_seconds: float = Field(default=0.1, ge=0, le=10)
    idempotency_ttl_seconds: int = Field(default=86_400, ge=60)
    subscriber_buffer: int = Field(default=256, ge=8)
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # Streams (SSE and WebSocket) one principal may hold open at once, across
    # every API process, so that one caller cannot hold all of them. Each holds
    # a lease in Redis that its process renews; a process that dies gives its
    # slots back one lease later.
    stream_max_connections: int = Field(default=20, ge=1)
    stream_lease_seconds: float = Field(default=30.0, ge=1)
    # Tasks one WebSocket may follow at once (each is a channel on the hub).
    ws_max_subscriptions: int = Field(default=100, ge=1)
    # How long a stream ticket (`?ticket=`, for browsers) waits to be used, once.
    stream_ticket_ttl_seconds: int = Field(default=30, ge=1, le=300)
    # Open streams check their credential again this often; a revocation or an
    # access token's expiry ends them at once, this catches an API key's expiry.
    stream_recheck_seconds: float = Field(default=60.0, gt=0)

    # Beat reads the schedules table this often, so a schedule created, changed,
    # disabled or deleted is followed within about this long without a restart.
    beat_poll_seconds: float = Field(default=1.0, gt=0, le=10)
    # A slot one beat claimed and has not submitted after this long (it died
    # between the two) is taken over by another, under the same idempotency key.
    beat_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    # How soon a slot that could not be submitted (Redis or the broker down,
    # the tenant at its in-flight limit) is tried again.
    beat_retry_seconds: float = Field(default=5.0, gt=0, le=600)
    # The shortest interval a tenant's schedule may have: each run is a recorded task.
    schedule_min_interval_seconds: int = Field(default=60, ge=1)
    # Replaces schedules/system.py's list when set (JSON, e.g. [] for none).
    system_schedules: list[SystemSchedule] | None = None

    # An optional language model behind an OpenAI-compatible chat-completions API
    # (vLLM, Ollama, a hosted one), e.g. "http://127.0.0.1:11434/v1": research and
    # content agents use it for answers and prose when set, their offline methods
    # when not. The key is sent as a bearer token when set (local servers need none).
    llm_base_url: str = ""
    llm_api_key: str = ""
    llm_model: str = ""
    # Each wait of a request (connect, each read); a whole answer may take longer.
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600)

    # Where spans go, over OTLP/HTTP (a collector's base URL, e.g.
    # "http://otel-collector:4318"; /v1/traces is added). Empty: tracing is off
    # and nothing is exported. The standard OTEL_EXPORTER_OTLP_ENDPOINT is read
    # when AIA's own is not set.
    otel_exporter_otlp_endpoint: str = Field(
        default="",
        validation_alias=AliasChoices(
            "AIA_OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    # The share of traces recorded (a new trace is sampled or not at its root,
    # which the API or the worker picks; its children follow).
    otel_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    # One JSON object per log line (time, level, process, queue, task, tenant,
    # trace), for a log pipeline; or plain text for a person at a terminal.
    log_format: Literal["text", "json"] = "text"

    redis_timeout_seconds: float = Field(default=2.0, gt=0)
    database_timeout_seconds: int = Field(default=3, ge=1)
    retry_after_seconds: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _derive_urls(self) -> Settings:
        # Derived defaults: the broker and result store follow the Redis URL and
        # the database is a SQLite file in the data home unless told otherwise.
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.data_home / 'aia.db'}")
        if not self.broker_url:
            object.__setattr__(self, "broker_url", self.redis_url)
        if not self.result_backend:
            object.__setattr__(self, "result_backend", self.redis_url)
        return self

    @model_validator(mode="after")
    def _llm_needs_a_model(self) -> Settings:
        if self.llm_base_url and not self.llm_model:
            raise ValueError(
                "AIA_LLM_BASE_URL is set but AIA_LLM_MODEL is not: name the model the "
                "server should answer with (e.g. AIA_LLM_MODEL=llama3.1:8b)"
            )
        return self

    def check_secret(self) -> None:
        """Refuse a missing or placeholder secret outside dev mode."""
        if self.dev:
            return
        if (
            self.secret_key.lower() in _PLACEHOLDER_SECRETS
            or len(self.secret_key) < _MIN_SECRET_LENGTH
        ):
            raise InsecureSettingsError(
                f"AIA_SECRET_KEY must be set to a random value of at least {_MIN_SECRET_LENGTH} "
                "characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`); "
                "set AIA_DEV=1 only on a development machine"
            )

    @property
    def broker_is_redis(self) -> bool:
        """True when tasks travel over Redis (the API can then enqueue directly)."""
        return self.broker_url.startswith(("redis://", "rediss://", "unix://"))

    @property
    def artifact_root(self) -> Path:
        return self.artifacts_dir or self.data_home / "artifacts"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide Settings, read from the environment on first use."""
    return Settings()

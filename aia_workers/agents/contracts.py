"""What an agent type is and what a run may call: the contract between AIA and a plugin.

An agent type is a class registered under the entry point group ``aia.agents``
(``[project.entry-points."aia.agents"]`` in a package's pyproject), with a
pydantic model for its configuration and one for a run's input, and one method
that does a run. A third-party package adds a type by declaring its entry
point; nothing in AIA changes.

Light: the API imports the types to list their schemas, so a type's module
imports pydantic and the standard library at module level and anything heavy
(numpy, pandas, statsmodels, a ranking library) inside ``run``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel

from aia_workers.errors import AiaError, TaskFailure

if TYPE_CHECKING:
    import redis
    from sqlalchemy.orm import Session, sessionmaker

    from aia_workers.ml.artifacts import ArtifactStore
    from aia_workers.ml.registry import ModelEvents
    from aia_workers.settings import Settings

__all__ = [
    "AgentContext",
    "AgentEnvironment",
    "AgentInputError",
    "AgentType",
    "Message",
    "RunCancelled",
]

ConfigT = TypeVar("ConfigT", bound=BaseModel)
InputT = TypeVar("InputT", bound=BaseModel)


class RunCancelled(AiaError):
    """The run was cancelled; raised by ``AgentContext.checkpoint`` between steps."""


class AgentInputError(TaskFailure):
    """The run cannot do what its input asks (a missing corpus, a column that is not there).

    The run fails with this message, which should say what to change.
    """


@dataclass(frozen=True, slots=True)
class AgentEnvironment:
    """What a worker lends a run: the database, stored files, Redis, the webhook outbox.

    ``events`` records a tenant's webhook event in the caller's transaction
    (``aia_workers.backbone.announcements.to_webhooks``); ``llm`` is the
    optional language-model client (None unless ``AIA_LLM_BASE_URL`` is set).
    """

    settings: Settings
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    redis: redis.Redis
    events: ModelEvents
    llm: Any = None


@dataclass(frozen=True, slots=True)
class Message:
    """A message in an agent's mailbox, as a run reads it.

    ``sender`` is ``agent:<id>`` when another agent's run sent it, else who
    posted it (``key:<id>``, ``user:<id>``); ``seq`` numbers that sender's
    messages to this agent (1, 2, ...). ``deliveries`` counts the runs it was
    handed to, this one included: above 1, an earlier run read it and did not
    acknowledge it.
    """

    id: str
    agent_id: str
    sender: str
    seq: int
    position: int
    body: dict[str, Any]
    created_at: datetime
    deliveries: int


class AgentContext(Protocol):
    """One run as its agent sees it."""

    @property
    def tenant(self) -> str: ...

    @property
    def agent_id(self) -> str: ...

    @property
    def run_id(self) -> str: ...

    @property
    def env(self) -> AgentEnvironment: ...

    def progress(self, current: int, total: int, message: str | None = None) -> None:
        """Report ``current`` of ``total`` steps done; reaches the run's event stream."""
        ...

    def checkpoint(self) -> None:
        """Raise RunCancelled if the run was cancelled; call it between steps."""
        ...

    def inbox(self, limit: int = 100) -> list[Message]:
        """The agent's unacknowledged messages, oldest first (so in ``seq`` order per
        sender), at most ``limit``; each counts as delivered to this run once."""
        ...

    def ack(self, message_ids: Iterable[str]) -> list[str]:
        """Acknowledge messages of this agent's mailbox; the ids acknowledged now."""
        ...

    def send(self, agent: str, body: Mapping[str, Any]) -> str:
        """Send ``body`` (JSON) to ``agent`` (an id or a name, in this tenant); its id."""
        ...


class AgentType(Generic[ConfigT, InputT]):
    """Base of every agent type: set the class attributes, implement ``run``.

    ``name`` is the entry point's name; ``config_model`` validates an agent's
    configuration when it is created or changed, ``input_model`` a run's input
    when it is submitted. ``run`` returns JSON (a dict), reports progress and
    calls ``ctx.checkpoint()`` between steps so that a cancel stops it there.

    Messages: a run reads its agent's mailbox with ``ctx.inbox()`` and may
    acknowledge them as it goes (``ctx.ack``). When ``acks_on_success`` is
    true (the default), a run that succeeds acknowledges everything its inbox
    handed it; a run that fails or is cancelled acknowledges nothing more, and
    what it read goes to the next run again (at least once).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    input_model: ClassVar[type[BaseModel]]
    acks_on_success: ClassVar[bool] = True

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    def run(self, inputs: InputT, ctx: AgentContext) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def schemas(cls) -> Mapping[str, Any]:
        """The JSON Schemas of the configuration and the input, as the API lists them."""
        return {
            "config": cls.config_model.model_json_schema(),
            "input": cls.input_model.model_json_schema(),
        }

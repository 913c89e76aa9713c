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

from collections.abc import Mapping
from dataclasses import dataclass
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


class AgentType(Generic[ConfigT, InputT]):
    """Base of every agent type: set the class attributes, implement ``run``.

    ``name`` is the entry point's name; ``config_model`` validates an agent's
    configuration when it is created or changed, ``input_model`` a run's input
    when it is submitted. ``run`` returns JSON (a dict), reports progress and
    calls ``ctx.checkpoint()`` between steps so that a cancel stops it there.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    input_model: ClassVar[type[BaseModel]]

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

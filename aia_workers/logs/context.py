"""What a log line was written about: the process, and the task it ran for, if any.

Context variables rather than thread-locals: a task's lines are tagged in
whichever pool it runs (prefork, threads, gevent), and nothing leaks from
one task into the next.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass

__all__ = ["TaskScope", "bind_task", "current_task", "process", "set_process", "unbind_task"]


@dataclass(frozen=True, slots=True)
class TaskScope:
    task_id: str | None
    tenant: str | None
    queue: str | None


_NONE = TaskScope(None, None, None)
_task: ContextVar[TaskScope] = ContextVar("aia_log_task", default=_NONE)
_process = {"name": "aia", "queue": None}


def set_process(name: str, queue: str | None = None) -> None:
    """Name this process in its lines (``aia-api``, ``aia-worker-ml``), with its queue if one."""
    _process.update(name=name, queue=queue)


def process() -> tuple[str, str | None]:
    """This process's name and queue, as set."""
    return str(_process["name"]), _process["queue"]


def bind_task(task_id: str, tenant: str | None, queue: str | None) -> Token[TaskScope]:
    """Tag the lines logged from here on, in this context, with the task."""
    return _task.set(TaskScope(task_id, tenant, queue))


def unbind_task(token: Token[TaskScope]) -> None:
    _task.reset(token)


def current_task() -> TaskScope:
    return _task.get()

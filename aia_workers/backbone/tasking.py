"""The base class and decorator that turn a catalog entry into a Celery task."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from celery import Task
from celery.exceptions import Ignore

from aia_workers.backbone.catalog import TaskType
from aia_workers.backbone.deferral import put_back
from aia_workers.backbone.events import dumps
from aia_workers.backbone.progress import ProgressReporter
from aia_workers.backbone.publisher import get_publisher
from aia_workers.backbone.slots import get_keeper
from aia_workers.backbone.states import Event
from aia_workers.celery import app
from aia_workers.errors import TransientError
from aia_workers.settings import DEFAULT_TENANT

__all__ = ["AiaTask", "aia_task", "progress_reporter"]

log = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Callable[..., Any])


class AiaTask(Task):  # type: ignore[misc]
    """Marks the task started before its body runs, and skips cancelled tasks.

    Success, failure and revocation are published by the signal handlers in
    ``aia_workers.backbone.observability``. The start is published here because only
    here can a task cancelled while queued be skipped, or one whose tenant
    has no free slot on the queue be put back to wait, and the retry because
    only here does it go out before the retried message can start elsewhere.
    """

    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = (TransientError,)
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 5

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if task_id is None or self.request.called_directly:
            return super().__call__(*args, **kwargs)
        queue = (self.request.delivery_info or {}).get("routing_key") or ""
        tenant = kwargs.get("tenant") or DEFAULT_TENANT
        publisher = get_publisher()
        try:
            outcome = publisher.transition(
                task_id, Event.STARTED, fallback=(tenant, self.name, queue)
            )
        except redis.RedisError:
            # The work matters more than its telemetry (and its tenant's cap); run it anyway.
            log.exception("could not record the start of task %s", task_id)
            return super().__call__(*args, **kwargs)
        if outcome.outcome == "quarantined":
            # Acknowledged without running: under late acks a body that
            # kills its process would otherwise come back forever.
            log.error(
                "quarantined task %s: its worker was lost %s times; it is a dead letter "
                "now and runs again only when replayed",
                task_id,
                outcome.losses,
            )
            raise Ignore()
        if outcome.outcome == "terminal":
            log.info("skipping task %s: it is already %s", task_id, outcome.status)
            raise Ignore()
        fair = publisher.fair
        if fair is None:
            return super().__call__(*args, **kwargs)
        if outcome.outcome == "deferred":
            # Queued again to ask later; this process goes on to other work.
            put_back(self, outcome, queue=queue, tenant=tenant, fair=fair)
            raise Ignore()
        slot = fair.slot_for(queue, tenant)
        keeper = get_keeper() if slot is not None else None
        if slot is None or keeper is None:
            return super().__call__(*args, **kwargs)
        keeper.hold(task_id, slot)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            keeper.release(task_id)

    def retry(self, *args: Any, exc: BaseException | None = None, **options: Any) -> Any:
        # Published before Celery sends the retry: once it is sent another
        # worker may start it, and its "started" must come after "retrying".
        limit = options.get("max_retries", self.max_retries)
        task_id = self.request.id
        will_retry = limit is None or self.request.retries < limit
        if task_id is not None and not self.request.called_directly and will_retry:
            reason = f"{type(exc).__name__}: {exc}" if exc is not None else "retry requested"
            try:
                get_publisher().transition(
                    task_id,
                    Event.RETRYING,
                    data={"reason": reason, "retry": self.request.retries + 1},
                )
            except redis.RedisError:
                log.warning("could not record the retry of task %s", task_id, exc_info=True)
        return super().retry(*args, exc=exc, **options)


def aia_task(
    task_type: TaskType, *, base: type[AiaTask] = AiaTask, **options: Any
) -> Callable[[_F], Task]:
    """Register the decorated function as the Celery task for ``task_type``.

    ``base`` is AiaTask or a subclass that adds to its start (an agent run's
    concurrency gate). ``options`` go to Celery's ``app.task`` (e.g.
    ``throws``: exceptions that end a task in the normal course, logged
    without a traceback; ``ignore_result=False`` for a type that runs in a
    chord's header).
    """
    return app.task(  # type: ignore[no-any-return]
        name=task_type.name,
        base=base,
        bind=True,
        # The result lives in the task's AIA record and reaches callers as an
        # event; storing it in Celery's result backend too would cost every
        # task a write and a publish. Canvas work that needs the backend
        # (chords) opts back in on its own task types.
        ignore_result=options.pop("ignore_result", True),
        time_limit=task_type.time_limit_seconds,
        soft_time_limit=task_type.soft_time_limit_seconds,
        **options,
    )


def progress_reporter(task: Task) -> ProgressReporter:
    """A ProgressReporter that publishes ``progress`` events for ``task``."""
    task_id = task.request.id

    def report(current: int, total: int, message: str | None = None) -> None:
        if task_id is None:
            return
        progress = {"current": current, "total": total, "message": message}
        get_publisher().progress(task_id, progress, {"progress": dumps(progress)})

    return report

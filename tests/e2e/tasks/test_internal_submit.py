"""A task AIA submits itself (beat, a worker) is recorded and run like one from the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from pydantic import ValidationError

import celeryconfig
from aia_workers.backbone.keys import task_key
from aia_workers.backbone.submission import BrokerRefusedError, TenantBusyError, submit_task
from aia_workers.settings import Settings
from tests.support import Stack, free_port, wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def sender(stack: Stack) -> Iterator[tuple[redis.Redis, Celery, Settings]]:
    settings = Settings(
        redis_url=stack.env["AIA_REDIS_URL"],
        broker_url=stack.env["AIA_BROKER_URL"],
        database_url=stack.env["AIA_DATABASE_URL"],
    )
    app = Celery("submission-test", broker=settings.broker_url, set_as_current=False)
    # The queues as AIA declares them: RabbitMQ refuses a redeclaration with other arguments.
    app.conf.task_queues = celeryconfig.task_queues
    client = redis.Redis.from_url(settings.redis_url)
    yield client, app, settings
    client.close()
    app.close()


def test_a_task_submitted_inside_aia_runs_and_its_tenant_sees_it(
    stack: Stack, sender: tuple[redis.Redis, Celery, Settings]
) -> None:
    client, app, settings = sender
    sent = submit_task(
        client,
        app,
        settings,
        tenant="default",
        type_name="diagnostics.sleep",
        payload={"seconds": 0, "steps": 2},
    )
    assert sent.created
    with stack.client() as api:
        done = wait_status(api, sent.task_id, {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        assert done["type"] == "diagnostics.sleep"
        assert done["progress"]["current"] == 2
    with stack.client(stack.create_key("admin", tenant="other")) as api:
        assert api.get(f"/v1/tasks/{sent.task_id}").status_code == 404


def test_an_idempotency_key_makes_one_task(sender: tuple[redis.Redis, Celery, Settings]) -> None:
    client, app, settings = sender
    first, again = (
        submit_task(
            client,
            app,
            settings,
            tenant="default",
            type_name="diagnostics.sleep",
            payload={"seconds": 0},
            idempotency="schedule:1:2026-11-29T12:00",
        )
        for _ in range(2)
    )
    assert first.created
    assert not again.created
    assert again.task_id == first.task_id


def test_a_payload_the_catalog_refuses_records_nothing(
    sender: tuple[redis.Redis, Celery, Settings],
) -> None:
    client, app, settings = sender
    before = set(client.scan_iter(task_key("*")))
    with pytest.raises(ValidationError):
        submit_task(
            client, app, settings, tenant="default", type_name="diagnostics.sleep", payload={}
        )
    assert set(client.scan_iter(task_key("*"))) == before


def test_at_the_tenant_limit_nothing_is_recorded(
    sender: tuple[redis.Redis, Celery, Settings],
) -> None:
    client, app, settings = sender
    tight = settings.model_copy(update={"tenant_max_inflight": 0})
    with pytest.raises(TenantBusyError):
        submit_task(
            client, app, tight, tenant="busy", type_name="diagnostics.sleep", payload={"seconds": 0}
        )


def test_a_broker_that_refuses_fails_the_record(
    stack: Stack, sender: tuple[redis.Redis, Celery, Settings]
) -> None:
    client, _, settings = sender
    dead = Celery("dead-broker", broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    dead.conf.broker_transport_options = {"max_retries": 0}
    with pytest.raises(BrokerRefusedError) as refused:
        submit_task(
            client,
            dead,
            settings,
            tenant="default",
            type_name="diagnostics.sleep",
            payload={"seconds": 0},
        )
    dead.close()
    with stack.client() as api:
        view = api.get(f"/v1/tasks/{refused.value.task_id}").json()
    assert view["status"] == "failed"
    assert view["error"]["type"] == "EnqueueError"

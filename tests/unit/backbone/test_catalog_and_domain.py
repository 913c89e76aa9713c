"""Pure pieces: the catalog, the diagnostics workload, profiles and settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aia_workers.backbone.catalog import CATALOG, get_task_type, modules_for_queues
from aia_workers.backbone.profiles import PROFILES
from aia_workers.backbone.states import Queue
from aia_workers.diagnostics.sleep import sleep_in_steps
from aia_workers.errors import TaskFailure, UnknownTaskTypeError
from aia_workers.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(UnknownTaskTypeError, match=r"known types: .*diagnostics\.sleep"):
        get_task_type("diagnostics.nap")


def test_every_task_type_is_complete() -> None:
    for name, task_type in CATALOG.items():
        assert task_type.name == name
        assert task_type.queue in Queue
        assert task_type.permission
        assert 0 < task_type.soft_time_limit_seconds < task_type.time_limit_seconds


def test_workers_import_only_their_queues_modules() -> None:
    assert modules_for_queues(["default"]) == ["aia_workers.diagnostics.tasks"]
    assert modules_for_queues(["webhooks"]) == ["aia_workers.webhooks.tasks"]
    assert modules_for_queues(["ml"]) == ["aia_workers.ml.tasks"]
    assert modules_for_queues(["drift"]) == ["aia_workers.drift.tasks"]
    assert "aia_workers.diagnostics.tasks" in modules_for_queues(None)


def test_sleep_reports_each_step_then_returns() -> None:
    reports: list[tuple[int, int, str | None]] = []
    result = sleep_in_steps(0, 3, fail=False, report=lambda c, t, m=None: reports.append((c, t, m)))
    assert reports == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]
    assert result["steps"] == 3


def test_sleep_fails_on_request_after_its_steps() -> None:
    reports: list[int] = []
    with pytest.raises(TaskFailure, match="failed on request after 2 steps"):
        sleep_in_steps(0, 2, fail=True, report=lambda c, t, m=None: reports.append(c))
    assert reports == [1, 2]


def test_procfile_workers_match_their_profiles() -> None:
    procfile = dict(
        line.split(": ", 1)
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for queue, profile in PROFILES.items():
        command = procfile[f"worker-{queue.value}"]
        assert command == "celery -A aia_workers " + " ".join(profile.celery_args())
    assert set(procfile) >= {"api", "beat", "flower"}
    assert PROFILES[Queue.ML].prefetch_multiplier == 1
    assert PROFILES[Queue.ML].pool == "prefork"
    assert PROFILES[Queue.WEBHOOKS].pool in ("threads", "gevent")
    assert PROFILES[Queue.WEBHOOKS].concurrency >= 16


def test_settings_derive_their_defaults(tmp_path: Path) -> None:
    settings = Settings(data_home=tmp_path, redis_url="redis://r:6379/3")
    assert settings.database_url == f"sqlite:///{tmp_path / 'aia.db'}"
    assert settings.broker_url == "redis://r:6379/3"
    assert settings.result_backend == "redis://r:6379/3"
    assert settings.broker_is_redis
    amqp = Settings(data_home=tmp_path, broker_url="amqp://guest@rabbit//")
    assert not amqp.broker_is_redis


def test_celeryconfig_is_json_only_and_at_least_once() -> None:
    import celeryconfig

    assert celeryconfig.accept_content == ["json"]
    assert celeryconfig.task_serializer == "json"
    assert celeryconfig.task_acks_late is True
    assert celeryconfig.task_reject_on_worker_lost is True
    # RabbitMQ holds an unacked delivery for as long as the longest task may;
    # on Redis, live workers keep their messages from aging (visibility.py).
    longest = max(t.time_limit_seconds for t in CATALOG.values())
    consumer_timeout_ms = celeryconfig.task_queues[0].queue_arguments["x-consumer-timeout"]
    assert consumer_timeout_ms > (longest + Settings().max_countdown_seconds) * 1000
    assert {q.name for q in celeryconfig.task_queues} == {q.value for q in Queue}
    assert celeryconfig.worker_send_task_events
    assert celeryconfig.task_send_sent_event


def test_no_module_reads_the_environment_but_settings() -> None:
    offenders = []
    for path in [*ROOT.glob("aia_workers/**/*.py"), *ROOT.glob("aia_api/**/*.py")]:
        text = path.read_text()
        if re.search(r"os\.environ|os\.getenv", text) and path.name not in (
            "settings.py",
            "dev.py",
        ):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_sleep_raises_a_transient_error_on_early_attempts() -> None:
    from aia_workers.errors import TransientError

    with pytest.raises(TransientError, match="transient failure 1 of 2"):
        sleep_in_steps(0, 1, fail=False, report=lambda c, t, m=None: None, transient_failures=2)
    with pytest.raises(TransientError, match="transient failure 2 of 2"):
        sleep_in_steps(
            0, 1, fail=False, report=lambda c, t, m=None: None, attempt=1, transient_failures=2
        )
    assert (
        sleep_in_steps(
            0, 1, fail=False, report=lambda c, t, m=None: None, attempt=2, transient_failures=2
        )["steps"]
        == 1
    )

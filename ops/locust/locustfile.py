"""Load mixes for AIA's HTTP API, for Locust.

Three kinds of client, weighted as a busy deployment sees them:

* ``Submitter``: submits a no-op ``diagnostics.sleep`` and follows its event
  stream (SSE) to the terminal event; the whole round trip is reported as one
  request, ``diagnostics.sleep: submit -> succeeded``.
* ``Browser``: pages through ``GET /v1/tasks?limit=50`` by its ``next`` links,
  and reads the other lists (models, datasets, experiments, schedules, ...).
* ``Predictor``: predicts with one small classifier, which the first predictor
  of a run trains (the others wait for it) unless the model already has a
  version; each prediction is an ``ml.predict`` task followed to its end, so
  after the first one the ml worker serves it from its model cache.

Run it against a running API (``aia dev`` prints the key and keeps it in its
data home's ``credentials.json``)::

    AIA_API_KEY=aia_... locust -f ops/locust/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 10 -r 10 -t 30s

All clients share one key, so keep the streaming users (Submitter and
Predictor) under the key's ``AIA_STREAM_MAX_CONNECTIONS`` (20). Users run
closed-loop by default (``--think-seconds 0``); give them a pause between
requests to model people rather than programs. ``bench/locust_load.py`` runs
this against a private ``aia dev`` and prints the figures.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import gevent.lock
from locust import FastHttpUser, between, events, task
from locust.argument_parser import LocustArgumentParser
from locust.contrib.fasthttp import FastResponse
from locust.env import Environment
from locust.exception import StopUser

__all__ = ["Browser", "Predictor", "Submitter"]

# The request names the statistics group by; bench/locust_load.py and the smoke
# test read them back.
SUBMIT_TO_SUCCEEDED = "diagnostics.sleep: submit -> succeeded"
PREDICT_TO_SUCCEEDED = "ml.predict: submit -> succeeded"
TRAIN_TO_SUCCEEDED = "ml.train: upload -> model"
TASK_EVENTS = "/v1/tasks/{id}/events"
TASKS_FIRST_PAGE = "/v1/tasks?limit=50"
TASKS_NEXT_PAGE = "/v1/tasks?limit=50&cursor= (next pages)"
PREDICT = "/v1/ml/models/{name}/predict"

_TERMINAL_EVENTS = frozenset({"succeeded", "failed", "cancelled", "error"})
_OTHER_LISTS = (
    "/v1/ml/models",
    "/v1/ml/datasets",
    "/v1/ml/experiments",
    "/v1/schedules",
    "/v1/webhooks",
    "/v1/dead-letters",
    "/v1/agents",
    "/v1/workflows",
)
_TRAINING_ROWS = 200


class TaskDidNotSucceed(Exception):
    """Raised (as a Locust failure) when a followed task ends other than ``succeeded``."""


class SetupFailed(Exception):
    """Raised (as a Locust failure) when the predictors' shared model cannot be made."""


@events.init_command_line_parser.add_listener
def _options(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--api-key",
        env_var="AIA_API_KEY",
        default="",
        is_secret=True,
        help="AIA API key every user sends (env AIA_API_KEY)",
    )
    parser.add_argument(
        "--think-seconds",
        type=float,
        default=0.0,
        help="each user pauses between 0 and this many seconds between tasks (default 0)",
    )
    parser.add_argument(
        "--model-name",
        default="locust-load",
        help="the model predictors use; trained once per run unless it has a version",
    )
    parser.add_argument(
        "--browse-pages",
        type=int,
        default=3,
        help="pages of GET /v1/tasks a browser follows by their next links (default 3)",
    )


@events.init.add_listener
def _require_key(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None and not options.api_key:
        raise SystemExit("set AIA_API_KEY (or --api-key) to an AIA API key")


class _AiaUser(FastHttpUser):
    """A client of AIA's API that authenticates with the run's API key."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        options = environment.parsed_options
        key = options.api_key if options is not None else ""
        self.default_headers = {"Authorization": f"Bearer {key}"}
        super().__init__(environment)

    def wait_time(self) -> float:
        options = self.environment.parsed_options
        think = options.think_seconds if options is not None else 0.0
        return between(0, think)(self) if think > 0 else 0.0

    def follow(self, started: float, task: dict[str, Any], name: str) -> None:
        """Follow ``task``'s events to the terminal one and report the whole round trip,
        from ``started`` (a ``time.perf_counter()``), as one request named ``name``."""
        terminal = self._terminal_event(task["links"]["events"])
        failure = None
        if terminal != "succeeded":
            failure = TaskDidNotSucceed(f"task {task['id']} ended with {terminal or 'no event'}")
        self.environment.events.request.fire(
            request_type="TASK",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=failure,
            context={},
        )

    def _terminal_event(self, path: str) -> str | None:
        """The name of the stream's terminal event, or None if it ended without one."""
        response = self.client.get(
            path, name=TASK_EVENTS, stream=True, headers={"Accept": "text/event-stream"}
        )
        if response.status_code != 200:
            return None
        terminal = None
        buffered = ""
        # The API ends the stream after the terminal event; reading it to its end
        # leaves the keep-alive connection clean for the next request.
        for chunk in response.iter_content(chunk_size=4096):  # type: ignore[no-untyped-call]
            buffered += chunk if isinstance(chunk, str) else chunk.decode()
            *lines, buffered = buffered.split("\n")
            for line in lines:
                if line.startswith("event:") and terminal is None:
                    event = line.removeprefix("event:").strip()
                    if event in _TERMINAL_EVENTS:
                        terminal = event
        return terminal

    def submitted(self, response: FastResponse) -> dict[str, Any] | None:
        """The task of a ``202 Accepted`` answer, or None (an error status is already a failure)."""
        if response.status_code != 202:
            return None
        return dict(response.json())


class Submitter(_AiaUser):
    """Submits a no-op task and follows its stream until it has succeeded."""

    weight = 3

    @task
    def submit_and_follow(self) -> None:
        started = time.perf_counter()
        response = self.client.post(
            "/v1/tasks",
            json={"type": "diagnostics.sleep", "payload": {"seconds": 0, "steps": 1}},
        )
        submitted = self.submitted(response)
        if submitted is not None:
            self.follow(started, submitted, SUBMIT_TO_SUCCEEDED)


class Browser(_AiaUser):
    """Pages through the task history and reads the other lists."""

    weight = 2

    @task(3)
    def page_through_tasks(self) -> None:
        options = self.environment.parsed_options
        pages = options.browse_pages if options is not None else 3
        page = self.client.get("/v1/tasks?limit=50", name=TASKS_FIRST_PAGE)
        for _ in range(pages - 1):
            if page.status_code != 200:
                return
            following = page.json()["links"].get("next")
            if not following:
                return
            page = self.client.get(following, name=TASKS_NEXT_PAGE)

    @task(2)
    def read_another_list(self) -> None:
        path = random.choice(_OTHER_LISTS)
        self.client.get(f"{path}?limit=50", name=f"{path}?limit=50")


class _SharedModel:
    """The model a run's predictors use: the first to ask makes it, the others wait."""

    def __init__(self) -> None:
        self._lock = gevent.lock.Semaphore()
        self.name: str | None = None
        self.failure: str | None = None

    def reset(self) -> None:
        self.name = None
        self.failure = None

    def get(self, make: Callable[[], str]) -> str:
        """The model's name, made by ``make`` if no user of this run made it yet.

        Raises ``SetupFailed`` for every waiting user if making it failed once.
        """
        with self._lock:
            if self.name is None and self.failure is None:
                try:
                    self.name = make()
                except SetupFailed as exc:
                    self.failure = str(exc)
            if self.name is None:
                raise SetupFailed(self.failure or "no model")
            return self.name


_model = _SharedModel()


@events.test_start.add_listener
def _new_run(**_: Any) -> None:
    _model.reset()


class Predictor(_AiaUser):
    """Predicts one row at a time with a small classifier (``x1``, ``x2`` -> ``label``)."""

    weight = 1

    def on_start(self) -> None:
        try:
            self.model = _model.get(self._model_with_a_version)
        except SetupFailed as exc:
            self.environment.events.request.fire(
                request_type="TASK",
                name=TRAIN_TO_SUCCEEDED,
                response_time=0,
                response_length=0,
                exception=exc,
                context={},
            )
            raise StopUser from exc

    @task
    def predict(self) -> None:
        started = time.perf_counter()
        row = {"x1": random.gauss(0, 1), "x2": random.gauss(0, 1)}
        response = self.client.post(
            f"/v1/ml/models/{self.model}/predict", json={"rows": [row]}, name=PREDICT
        )
        submitted = self.submitted(response)
        if submitted is not None:
            self.follow(started, submitted, PREDICT_TO_SUCCEEDED)

    def _model_with_a_version(self) -> str:
        options = self.environment.parsed_options
        name = str(options.model_name) if options is not None else "locust-load"
        with self.client.get(
            f"/v1/ml/models/{name}", name="/v1/ml/models/{name}", catch_response=True
        ) as existing:
            # 404 is an answer here: no such model yet.
            if existing.status_code == 404:
                existing.success()
            elif existing.status_code == 200 and existing.json().get("latest_version"):
                return name
        self._train(name)
        return name

    def _train(self, name: str) -> None:
        """Upload a small seeded data set, train a logistic regression on it as model ``name``."""
        started = time.perf_counter()
        dataset = self.client.post(
            f"/v1/ml/datasets?name={name}",
            data=_training_csv(),
            headers={"Content-Type": "text/csv"},
            name="/v1/ml/datasets?name=",
        )
        if dataset.status_code != 201:
            raise SetupFailed(f"dataset upload answered {dataset.status_code}")
        experiment = self.client.post(
            "/v1/ml/experiments",
            json={
                "name": name,
                "task": "classification",
                "dataset_id": dataset.json()["id"],
                "target": "label",
                "time_budget_seconds": 30,
                "options": {"estimator": "logistic_regression"},
            },
        )
        if experiment.status_code != 201:
            raise SetupFailed(
                f"experiment {name!r} answered {experiment.status_code}: {experiment.text}; "
                "with 409, pass another --model-name"
            )
        run = self.client.post(
            experiment.json()["links"]["runs"], json={}, name="/v1/ml/experiments/{id}/runs"
        )
        if run.status_code != 202:
            raise SetupFailed(f"training run answered {run.status_code}")
        ran = run.json()
        terminal = self._terminal_event(ran["links"]["events"])
        if terminal != "succeeded":
            raise SetupFailed(f"training task {ran['task_id']} ended with {terminal}")
        self.environment.events.request.fire(
            request_type="TASK",
            name=TRAIN_TO_SUCCEEDED,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None,
            context={},
        )


def _training_csv() -> str:
    """Two Gaussian features and a label that a line separates, seeded."""
    rng = random.Random(14)
    lines = ["x1,x2,label"]
    for _ in range(_TRAINING_ROWS):
        x1, x2 = rng.gauss(0, 1), rng.gauss(0, 1)
        lines.append(f"{x1:.4f},{x2:.4f},{'yes' if x1 + 0.5 * x2 > 0 else 'no'}")
    return "\n".join(lines) + "\n"

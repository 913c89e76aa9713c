"""The search's entry point: check the options, search within the budget, refit the best."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from aia_workers.backbone.progress import ProgressReporter, discard_progress
from aia_workers.ml.budget import BudgetExceeded, fit_deadline
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.trainers.automl.ensemble import AveragedModel, select_members
from aia_workers.ml.trainers.automl.options import search_choices, single_choice
from aia_workers.ml.trainers.automl.predictor import TabularPredictor
from aia_workers.ml.trainers.automl.search import Search
from aia_workers.ml.trainers.automl.spaces import build_estimator
from aia_workers.ml.trainers.convergence import collect_convergence_warnings
from aia_workers.ml.trainers.fitted import Fitted, TrainingSpec, Trial, json_safe
from aia_workers.ml.trainers.staged import staged_fit
from aia_workers.ml.trainers.tabular import (
    TabularSplit,
    TabularTask,
    build_pipeline,
    holdout_scores,
    prepare_split,
)

__all__ = ["search_tabular"]

_HOLDOUT = 0.2


def search_tabular(
    frame: pd.DataFrame,
    spec: TrainingSpec,
    task: TabularTask,
    report: ProgressReporter = discard_progress,
) -> Fitted:
    """Choose and fit a tabular model within ``spec.time_budget_seconds`` (wall-clock seconds).

    Candidates are cross-validated (3 folds of the 80 % training split), the
    best is refitted on the whole training split and scored on the 20 %
    holdout, all within the budget: each trial is timed, and the next starts
    only when it is expected to finish with time left for the refit. The
    metric (``spec.metric``) is one of ``METRICS``; see ``metric_score``.

    Options (``spec.options``): ``max_trials`` caps the trials (with a budget
    that is not reached, the result is then the same for a seed);
    ``estimators`` restricts the families searched; ``estimator`` fits one
    family once, with its defaults updated by ``params``, and no search.
    The first trial always runs, even if it alone overruns the budget;
    histogram gradient boosting at its defaults goes first when searched.

    After the search, an average of the best few trials (``ensemble``) serves
    instead of the best alone when it scores better on their out-of-fold
    predictions and its other members' refits fit in the budget;
    ``details["ensemble"]`` lists its members and weights ([] otherwise).

    The final fit (the refit, or the one estimator) keeps to the budget too:
    forests, boosting and the MLP stop growing at the deadline with what they
    have (``details["deadline_cut"]`` says how far they got). A final fit
    interrupted by the run's hard stop (BudgetExceeded) falls back to the best
    trial's fold model when there was a search, and fails when there was not.
    """
    started = time.perf_counter()
    task = TabularTask(task)
    if not spec.time_budget_seconds > 0:
        raise ValueError(f"the time budget must be > 0 s, not {spec.time_budget_seconds!r}")
    metric, families, cap = search_choices(task, spec)
    data = prepare_split(
        frame,
        target=spec.target,
        task=task,
        kinds=spec.kinds,
        features=spec.features,
        seed=spec.seed,
        test_size=_HOLDOUT,
    )
    caught: list[str] = []
    # One BLAS/OpenMP thread per fit keeps fit times predictable, which the budget
    # relies on; on a busy two-core host a second OpenMP thread spinning for its
    # turn made one gradient-boosting fit some fifty times slower.
    with threadpool_limits(limits=1), collect_convergence_warnings(caught):
        if spec.options.get("estimator") is not None:
            family, params = single_choice(spec, task, families, data)
            search = None
        else:
            search = Search(data, task, metric, families, spec, started)
            stopped = search.run(cap, report)
            best = search.best()
            if best is None:
                why = search.records[0].trial.error if search.records else search.dropped
                raise DatasetError(f"no model could be fitted: {why}")
            family, params = best.trial.estimator, best.params
        refit_started = time.perf_counter()
        pipeline, cut, served = _final_fit(
            build_pipeline(data.kinds, build_estimator(task, family, spec.seed, params)),
            data,
            search,
            started + spec.time_budget_seconds,
        )
        model: Pipeline | AveragedModel = pipeline
        members: list[dict[str, Any]] = []
        if search is not None and served == "refit" and cut is None:
            model, members = _ensemble(
                pipeline, data, search, task, metric, started + spec.time_budget_seconds
            )
        fit_seconds = time.perf_counter() - refit_started
        metrics = holdout_scores(model, task, data.x_test, data.y_test)
    if search is None:
        score = -metrics["mae"] if metric == "neg_mae" else metrics.get(metric)
        leaderboard = [Trial(family, json_safe(params), score, fit_seconds)]
        stopped, dropped = "budget" if cut else "exhausted", {}
    else:
        leaderboard = search.leaderboard()
        metrics["cv_score"] = float(leaderboard[0].score or 0.0)
        dropped = search.dropped
    report(len(leaderboard), len(leaderboard), f"{family} refitted")
    return Fitted(
        model=TabularPredictor(model, task, list(data.kinds)),
        estimator=family,
        params=json_safe(params),
        metrics=metrics,
        fit_seconds=fit_seconds,
        leaderboard=leaderboard,
        details=json_safe(
            {
                "budget_seconds": spec.time_budget_seconds,
                "elapsed_seconds": time.perf_counter() - started,
                "trials": len(leaderboard),
                "metric": metric,
                "stopped": stopped,
                "dropped": dropped,
                "rows": {"train": len(data.y_train), "holdout": len(data.y_test)},
                "warnings": sorted(set(caught)),
                "deadline_cut": cut,
                "served": served,
                "ensemble": members,
            }
        ),
    )


def _final_fit(
    pipeline: Pipeline, data: TabularSplit, search: Search | None, deadline: float
) -> tuple[Pipeline, dict[str, Any] | None, str]:
    """The model to serve, what the deadline cut from it, and whether it is the refit.

    ``pipeline`` is fitted on the whole training split, growing only until the
    deadline. When the run's hard stop interrupts the search or this fit, the
    best trial's last fold model serves instead ("fold_model"); with no search
    there is nothing to serve and BudgetExceeded goes on.
    """
    if search is not None and search.interrupted:
        return _fallback(search), None, "fold_model"
    try:
        with fit_deadline(deadline):
            cut = staged_fit(pipeline, data.x_train, data.y_train)
    except BudgetExceeded:
        if search is None or search.fallback is None:
            raise
        return search.fallback, None, "fold_model"
    return pipeline, cut, "refit"


def _fallback(search: Search) -> Pipeline:
    if search.fallback is None:
        raise BudgetExceeded("the time budget ran out before any trial finished")
    return search.fallback


def _ensemble(
    best: Pipeline,
    data: TabularSplit,
    search: Search,
    task: TabularTask,
    metric: str,
    deadline: float,
) -> tuple[Pipeline | AveragedModel, list[dict[str, Any]]]:
    """An average of the best few trials, refitted, when it beats ``best`` (the best, refitted).

    Returns the model to serve and its members, ``{"estimator", "params",
    "weight"}`` ([] for ``best`` alone). The other members are refitted only
    while they are expected to end before ``deadline``; if one cannot be, or
    the run's hard stop interrupts it, ``best`` serves alone.
    """
    ranked = [r for r in search.ranked() if r.predictions is not None]
    if len(ranked) < 2 or ranked[0] is not search.best():
        return best, []
    weights = select_members(
        task,
        metric,
        data.y_train,
        search.classes,
        [r.predictions for r in ranked if r.predictions is not None],
    )
    if len(weights) < 2:
        return best, []
    others = [i for i in weights if i != 0]
    if sum(search.refit_seconds(ranked[i]) for i in others) > deadline - time.perf_counter():
        return best, []
    fitted = {0: best}
    try:
        with fit_deadline(deadline):
            for i in others:
                family, params = ranked[i].trial.estimator, ranked[i].params
                estimator = build_estimator(task, family, search.seed, params)
                pipeline = build_pipeline(data.kinds, estimator)
                if staged_fit(pipeline, data.x_train, data.y_train) is not None:
                    return best, []
                fitted[i] = pipeline
    except BudgetExceeded:
        return best, []
    order = sorted(weights)
    members = [
        {
            "estimator": ranked[i].trial.estimator,
            "params": ranked[i].trial.params,
            "weight": weights[i],
        }
        for i in order
    ]
    model = AveragedModel([fitted[i] for i in order], [weights[i] for i in order], task)
    return model, members

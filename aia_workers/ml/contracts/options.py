"""Training options: the names each kind of task takes, and the bounds on each.

Light on purpose: the API checks an experiment's and a run's options with
``check_options`` before it stores or queues anything, and the worker checks
them again before it trains, because what is stored may predate a lower bound
or may not have come through the API at all. Anything not named here is
refused: an estimator never sees a parameter nobody bounded (``n_jobs``,
``device``, ``verbose`` ...). Bounds an operator may want to move come from
Settings (``OptionLimits``); the rest keep each fit to what one ``ml`` task can
afford.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, Protocol, get_args

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from aia_workers.errors import AiaError
from aia_workers.ml.contracts.payloads import MLTask

__all__ = [
    "ANOMALY_ESTIMATORS",
    "FORECAST_ESTIMATORS",
    "MAX_FORECAST_STEPS",
    "TABULAR_ESTIMATORS",
    "TEXT_ESTIMATORS",
    "OptionLimits",
    "OptionsError",
    "check_budget",
    "check_options",
]

_Classifier = Literal[
    "logistic_regression", "random_forest", "hist_gradient_boosting", "svm", "mlp"
]
_Regressor = Literal["ridge", "random_forest", "hist_gradient_boosting", "svm", "mlp"]
# Text candidates, and the families that pick every candidate of theirs.
_TextEstimator = Literal[
    "logistic_regression_c10", "logistic_regression_c1", "linear_svc", "logistic_regression"
]
_AnomalyEstimator = Literal["isolation_forest", "one_class_svm"]
_Forecaster = Literal["arima", "ets"]

TABULAR_ESTIMATORS: Mapping[MLTask, tuple[str, ...]] = {
    MLTask.CLASSIFICATION: get_args(_Classifier),
    MLTask.REGRESSION: get_args(_Regressor),
}
TEXT_ESTIMATORS: tuple[str, ...] = get_args(_TextEstimator)
ANOMALY_ESTIMATORS: tuple[str, ...] = get_args(_AnomalyEstimator)
FORECAST_ESTIMATORS: tuple[str, ...] = get_args(_Forecaster)
# A forecaster stores this many steps ahead; a horizon or season cannot be longer.
MAX_FORECAST_STEPS = 1_000


class _Settings(Protocol):
    ml_max_trees: int
    ml_max_hidden_units: int
    ml_max_epochs: int


@dataclass(frozen=True, slots=True)
class OptionLimits:
    """The bounds an operator sets: trees per forest or boosting rounds, MLP units and epochs.

    Each field is named after its setting (``AIA_`` + the name, upper-cased).
    """

    ml_max_trees: int = 1_000
    ml_max_hidden_units: int = 1_024
    ml_max_epochs: int = 1_000

    @classmethod
    def from_settings(cls, settings: _Settings) -> OptionLimits:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


class OptionsError(AiaError, ValueError):
    """Raised when training options name an unknown parameter or pass a bound.

    ``errors`` holds one ``{loc, pointer, message, type}`` entry per problem,
    ``loc`` from the request body's root (``["options", "params", "n_estimators"]``).
    """

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        self.errors = [dict(e) for e in errors]
        first = self.errors[0]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"{'.'.join(map(str, first['loc']))}: {first['message']}{more}")

    @property
    def parameter(self) -> str:
        """The first offending parameter, dotted from the body's root."""
        return ".".join(map(str, self.errors[0]["loc"]))


def _at_most(limit: str) -> AfterValidator:
    """A bound read from the ``OptionLimits`` passed as validation context."""

    def check(value: int, info: ValidationInfo) -> int:
        limits = (info.context or {}).get("limits") or OptionLimits()
        bound = getattr(limits, limit)
        if value > bound:
            raise PydanticCustomError(
                "less_than_equal",
                "Input should be less than or equal to {le} (the AIA_{setting} setting)",
                {"le": bound, "setting": limit.upper()},
            )
        return value

    return AfterValidator(check)


_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
_Trees = Annotated[int, Field(ge=1), _at_most("ml_max_trees")]
_Depth = Annotated[int, Field(ge=1, le=100)] | None
_Leaf = Annotated[int, Field(ge=1, le=10_000)]
_Gamma = Literal["scale", "auto"] | Annotated[float, Field(gt=0, le=1_000)]
_SvmC = Annotated[float, Field(gt=0, le=10_000)]


# -- one estimator's parameters (options.params with options.estimator) ---------------


class _Logistic(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    C: Annotated[float, Field(gt=0, le=1e6)]
    class_weight: Literal["balanced"] | None
    max_iter: Annotated[int, Field(ge=1, le=10_000)]


class _Ridge(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    alpha: Annotated[float, Field(ge=0, le=1e6)]


class _Forest(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    n_estimators: _Trees
    max_depth: _Depth
    min_samples_leaf: _Leaf
    max_features: Literal["sqrt", "log2"] | Annotated[float, Field(gt=0, le=1)] | None


class _Boosting(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    learning_rate: Annotated[float, Field(gt=0, le=1)]
    max_leaf_nodes: Annotated[int, Field(ge=2, le=1_024)]
    l2_regularization: Annotated[float, Field(ge=0, le=1e6)]
    max_iter: _Trees
    max_depth: _Depth
    min_samples_leaf: _Leaf


class _SvmClassifier(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    C: _SvmC
    gamma: _Gamma


class _SvmRegressor(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    C: _SvmC
    gamma: _Gamma
    epsilon: Annotated[float, Field(ge=0, le=10)]


class _Mlp(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    hidden_layers: Annotated[
        list[Annotated[int, Field(ge=1), _at_most("ml_max_hidden_units")]],
        Field(min_length=1, max_length=8),
    ]
    learning_rate: Annotated[float, Field(gt=0, le=1)]
    weight_decay: Annotated[float, Field(ge=0, le=1)]
    batch_size: Annotated[int, Field(ge=1, le=8_192)]
    max_epochs: Annotated[int, Field(ge=1), _at_most("ml_max_epochs")]
    patience: Annotated[int, Field(ge=1, le=1_000)]
    validation_fraction: Annotated[float, Field(ge=0, le=0.5)]
    dropout: Annotated[float, Field(ge=0, le=0.9)]


_SHARED_PARAMS = {"random_forest": _Forest, "hist_gradient_boosting": _Boosting, "mlp": _Mlp}
_PARAMS: Mapping[MLTask, Mapping[str, Any]] = {
    MLTask.CLASSIFICATION: {
        "logistic_regression": _Logistic,
        **_SHARED_PARAMS,
        "svm": _SvmClassifier,
    },
    MLTask.REGRESSION: {"ridge": _Ridge, **_SHARED_PARAMS, "svm": _SvmRegressor},
}


# -- each kind's options ---------------------------------------------------------------


_Trials = Annotated[int, Field(ge=1, le=1_000)]
# options.params is checked against the chosen estimator's own table.
_Params = dict[str, Any]


class _Classification(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    estimator: _Classifier
    estimators: Annotated[list[_Classifier], Field(min_length=1, max_length=5)]
    max_trials: _Trials
    params: _Params


class _Regression(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    estimator: _Regressor
    estimators: Annotated[list[_Regressor], Field(min_length=1, max_length=5)]
    max_trials: _Trials
    params: _Params


_Steps = Annotated[int, Field(ge=1, le=MAX_FORECAST_STEPS)]


class _Forecasting(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    horizon: _Steps
    season_length: _Steps
    backtest_folds: Annotated[int, Field(ge=1, le=20)]
    estimator: _Forecaster


class _Text(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    estimator: _TextEstimator


_Threshold = Annotated[float, Field(ge=-1, le=1)]


class _Sentiment(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    positive_threshold: _Threshold
    negative_threshold: _Threshold


class _Anomaly(TypedDict, total=False):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    contamination: Literal["auto"] | Annotated[float, Field(gt=0, le=0.5)] | None
    estimator: _AnomalyEstimator


_OPTIONS: Mapping[MLTask, Any] = {
    MLTask.CLASSIFICATION: _Classification,
    MLTask.REGRESSION: _Regression,
    MLTask.FORECASTING: _Forecasting,
    MLTask.TEXT_CLASSIFICATION: _Text,
    MLTask.SENTIMENT: _Sentiment,
    MLTask.ANOMALY_DETECTION: _Anomaly,
}
_ADAPTERS = {kind: TypeAdapter(shape) for kind, shape in _OPTIONS.items()}
_PARAM_ADAPTERS = {
    (kind, name): TypeAdapter(shape)
    for kind, table in _PARAMS.items()
    for name, shape in table.items()
}
# The worker decides how many threads a fit uses: one, so fit times stay predictable
# for the budget and a tenant cannot take every core of the host.
_WORKER_CHOSEN = {
    "n_jobs": "the worker runs each fit on one thread; it is not an option",
    "random_state": "the run's seed sets it",
    "device": "the worker chooses where a model trains",
}


def check_options(
    task: MLTask, options: Mapping[str, Any], limits: OptionLimits | None = None
) -> dict[str, Any]:
    """``options`` checked for ``task``: only known names, each within its bounds.

    Returns the options as given (nothing added); OptionsError lists every
    problem, each located from the request body's root.
    """
    context = {"limits": limits or OptionLimits()}
    errors: list[dict[str, Any]] = []
    try:
        checked: dict[str, Any] = _ADAPTERS[task].validate_python(options, context=context)
    except ValidationError as exc:
        raise OptionsError(_errors(exc, options, ("options",), _keys(_OPTIONS[task]))) from None
    params = checked.get("params")
    if params is not None:
        estimator = checked.get("estimator")
        if estimator is None:
            errors.append(
                _error(
                    ("options", "params"),
                    "params set one estimator's parameters; name it in options.estimator",
                    "missing_estimator",
                )
            )
        else:
            shape = _PARAMS[task][estimator]
            try:
                checked["params"] = _PARAM_ADAPTERS[task, estimator].validate_python(
                    params, context=context
                )
            except ValidationError as exc:
                errors += _errors(exc, params, ("options", "params"), _keys(shape), estimator)
    if task == MLTask.SENTIMENT:
        positive = checked.get("positive_threshold", 0.05)
        negative = checked.get("negative_threshold", -0.05)
        if negative >= positive:
            errors.append(
                _error(
                    ("options", "negative_threshold"),
                    f"must be below positive_threshold ({positive:g})",
                    "less_than",
                )
            )
    if errors:
        raise OptionsError(errors)
    return checked


def check_budget(seconds: float, max_seconds: float) -> None:
    """OptionsError unless ``0 < seconds <= max_seconds`` (AIA_ML_MAX_TIME_BUDGET_SECONDS)."""
    if not 0 < seconds <= max_seconds:
        raise OptionsError(
            [
                _error(
                    ("time_budget_seconds",),
                    f"Input should be greater than 0 and less than or equal to {max_seconds:g} "
                    "(the AIA_ML_MAX_TIME_BUDGET_SECONDS setting)",
                    "less_than_equal",
                )
            ]
        )


def _keys(shape: Any) -> list[str]:
    return sorted(shape.__optional_keys__ | shape.__required_keys__)


def _error(loc: Sequence[str | int], message: str, kind: str) -> dict[str, Any]:
    return {
        "loc": list(loc),
        "pointer": "/" + "/".join(str(p) for p in loc),
        "message": message,
        "type": kind,
    }


def _errors(
    exc: ValidationError,
    data: Any,
    prefix: tuple[str, ...],
    known: list[str],
    estimator: str | None = None,
) -> list[dict[str, Any]]:
    """Pydantic's errors located in ``data``, one per place, with messages that say the fix."""
    merged: dict[tuple[str | int, ...], dict[str, Any]] = {}
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = _in_data(err["loc"], data)
        message, kind = err["msg"], err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            whose = f"{estimator}'s parameters" if estimator else "this kind of task's options"
            message = _WORKER_CHOSEN.get(name) or f"unknown; {whose} are: {', '.join(known)}"
            kind = "unknown_option"
        key = (*prefix, *loc)
        if key in merged:  # one union member's complaint after another's
            merged[key]["message"] += f", or {message[0].lower()}{message[1:]}"
            continue
        merged[key] = _error(key, message, kind)
    return list(merged.values())


def _in_data(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """``loc`` cut where it leaves ``data``: union members' tags are not places in it."""
    kept: list[str | int] = []
    for part in loc:
        inside = (isinstance(data, Mapping) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        )
        if not inside:
            break
        data = data[part]
        kept.append(part)
    return tuple(kept)

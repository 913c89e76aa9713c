"""One analysis run: the steps in order, with progress and a cancel point between each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aia_workers.agents.analysis.correlations import correlations
from aia_workers.agents.analysis.dataset import load_table
from aia_workers.agents.analysis.describe import describe
from aia_workers.agents.analysis.outliers import OutlierMethod, outliers
from aia_workers.agents.analysis.regression import regress
from aia_workers.agents.analysis.seasonality import trends
from aia_workers.agents.contracts import AgentContext, AgentInputError
from aia_workers.agents.jsonsafe import finite

if TYPE_CHECKING:
    from aia_workers.agents.builtin.analysis import AnalysisConfig, AnalysisInput

__all__ = ["analyse"]


def analyse(config: AnalysisConfig, inputs: AnalysisInput, ctx: AgentContext) -> dict[str, Any]:
    """The analysis of ``inputs.dataset_id`` as JSON (no NaN: undefined numbers are null).

    Keys: ``dataset_id``, ``rows``, ``columns`` (statistics per column),
    ``correlations``, ``outliers``, and when asked ``trend`` (with a time
    column) and ``regression`` (with a target). AgentInputError names what to
    change when the dataset, a column or enough rows are missing.
    """
    named = [*(inputs.columns or [])]
    if named:
        # The target and time column are read even when ``columns`` leaves them out.
        named += [c for c in (inputs.target, inputs.time_column) if c and c not in named]
    out: dict[str, Any] = {"dataset_id": inputs.dataset_id}
    total = 4 + bool(inputs.time_column) + bool(inputs.target)
    done = 0

    def step(message: str) -> None:
        nonlocal done
        done += 1
        ctx.progress(done, total, message)
        ctx.checkpoint()

    ctx.checkpoint()
    table = load_table(ctx.env, ctx.tenant, inputs.dataset_id, named or None)
    for name in (inputs.target, inputs.time_column):
        if name and name not in table.kinds:
            raise AgentInputError(
                f"the dataset {inputs.dataset_id} has no column {name!r}; "
                f"its columns are {', '.join(table.kinds)}"
            )
    frame, kinds = table.frame, table.kinds
    if len(frame) < config.min_rows:
        raise AgentInputError(
            f"the dataset {inputs.dataset_id} has {len(frame)} rows; an analysis needs at "
            f"least {config.min_rows}"
        )
    out["rows"] = len(frame)
    step("loaded the dataset")

    out["columns"] = describe(frame, kinds, top_values=config.top_values)
    step("described the columns")

    numeric = [c for c in table.numeric() if c != inputs.time_column]
    out["correlations"] = correlations(frame, numeric, pairs=config.strongest_pairs)
    step("correlated the numeric columns")

    limit = config.max_outliers if inputs.max_outliers is None else inputs.max_outliers
    out["outliers"] = outliers(
        frame,
        numeric,
        method=OutlierMethod(config.outlier_method),
        iqr_factor=config.iqr_factor,
        mad_threshold=config.mad_threshold,
        limit=limit,
    )
    step("found the outliers")

    if inputs.time_column:
        series = numeric
        if inputs.target in series:
            series = [inputs.target, *(c for c in series if c != inputs.target)]
        out["trend"] = trends(
            frame,
            inputs.time_column,
            kinds[inputs.time_column],
            series[: config.max_series],
            period=inputs.period,
        )
        if len(series) > config.max_series:
            out["trend"]["left_out"] = series[config.max_series :]
        step("decomposed trend and seasonality")

    if inputs.target:
        out["regression"] = regress(
            frame,
            kinds,
            inputs.target,
            exclude={inputs.time_column} if inputs.time_column else set(),
            alpha=config.alpha,
            max_levels=config.max_levels,
        )
        step("fitted the regression")
    return finite(out)  # type: ignore[no-any-return]

"""The ``analysis`` agent type: statistics, correlations, outliers, trend and a regression.

Light at import: the work is in ``aia_workers.agents.analysis``, imported by ``run``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from aia_workers.agents.contracts import AgentContext, AgentType

__all__ = ["AnalysisAgent", "AnalysisConfig", "AnalysisInput"]

_NAME = Field(min_length=1, max_length=200)


class AnalysisConfig(BaseModel):
    """How an analysis agent analyses; every knob has a default."""

    model_config = ConfigDict(extra="forbid")

    top_values: int = Field(default=5, ge=1, le=100, description="most frequent values listed")
    strongest_pairs: int = Field(default=5, ge=1, le=100, description="correlated pairs listed")
    outlier_method: Literal["iqr", "mad"] = Field(
        default="iqr", description="Tukey's IQR fences or MAD-based modified z-scores"
    )
    iqr_factor: float = Field(default=1.5, gt=0, le=100, description="fences at k·IQR")
    mad_threshold: float = Field(default=3.5, gt=0, le=100, description="modified z beyond")
    max_outliers: int = Field(default=20, ge=0, le=10_000, description="listed per column")
    alpha: float = Field(
        default=0.05, gt=0, lt=0.5, description="significance level; intervals are 1 - alpha"
    )
    max_levels: int = Field(
        default=20, ge=2, le=1_000, description="most values of a one-hot encoded column"
    )
    max_series: int = Field(
        default=10, ge=1, le=200, description="most numeric columns decomposed along time"
    )
    min_rows: int = Field(default=3, ge=2, le=1_000_000, description="fewest rows analysed")


class AnalysisInput(BaseModel):
    """What to analyse: a dataset AIA holds and, optionally, a target and a time column."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(min_length=1, max_length=36)
    columns: list[str] | None = Field(
        default=None, max_length=1_000, description="columns analysed; all when absent"
    )
    target: str | None = Field(
        default=None, min_length=1, max_length=200, description="regressed on the others"
    )
    time_column: str | None = Field(
        default=None, min_length=1, max_length=200, description="orders trend and seasonality"
    )
    period: int | None = Field(
        default=None, ge=2, le=100_000, description="season length in steps; inferred if absent"
    )
    max_outliers: int | None = Field(
        default=None, ge=0, le=10_000, description="overrides the configuration's"
    )


class AnalysisAgent(AgentType[AnalysisConfig, AnalysisInput]):
    """Descriptive statistics, correlations, outliers, STL trend and seasonality, OLS."""

    name: ClassVar[str] = "analysis"
    summary: ClassVar[str] = (
        "Describes a dataset AIA holds: statistics per column, Pearson and Spearman "
        "correlations, robust outliers, trend and seasonality along a time column (STL) "
        "and a least-squares regression with p-values"
    )
    config_model: ClassVar[type[BaseModel]] = AnalysisConfig
    input_model: ClassVar[type[BaseModel]] = AnalysisInput

    def run(self, inputs: AnalysisInput, ctx: AgentContext) -> dict[str, Any]:
        from aia_workers.agents.analysis.report import analyse

        return analyse(self.config, inputs, ctx)

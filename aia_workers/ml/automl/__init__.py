"""Tabular AutoML: a seeded random search over model families that honours a time budget."""

from aia_workers.ml.automl.metrics import METRICS
from aia_workers.ml.automl.predictor import TabularPredictor
from aia_workers.ml.automl.spaces import SEARCH_SPACES, Family
from aia_workers.ml.automl.training import search_tabular

__all__ = ["METRICS", "SEARCH_SPACES", "Family", "TabularPredictor", "search_tabular"]

"""Tabular AutoML: a seeded random search over model families that honours a time budget."""

from aia_workers.ml.trainers.automl.metrics import METRICS
from aia_workers.ml.trainers.automl.predictor import TabularPredictor
from aia_workers.ml.trainers.automl.spaces import SEARCH_SPACES, Family
from aia_workers.ml.trainers.automl.training import search_tabular

__all__ = ["METRICS", "SEARCH_SPACES", "Family", "TabularPredictor", "search_tabular"]

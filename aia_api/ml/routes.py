"""Every route of ML, in the order the app mounts them."""

from aia_api.ml import datasets, drift, experiments, feedback, models, retraining

__all__ = ["routes"]

routes = [
    *datasets.routes,
    *experiments.routes,
    *models.routes,
    *retraining.routes,
    *feedback.routes,
    *drift.routes,
]

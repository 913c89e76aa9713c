"""Every route of ML, in the order the app mounts them."""

from aia_api.ml import datasets, drift, experiments, models

__all__ = ["routes"]

routes = [*datasets.routes, *experiments.routes, *models.routes, *drift.routes]

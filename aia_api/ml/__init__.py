"""ML over HTTP: datasets, experiments and runs, the model registry, predictions."""

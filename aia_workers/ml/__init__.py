"""Machine learning on the ``ml`` queue: datasets, training, the model registry."""

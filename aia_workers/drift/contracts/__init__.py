"""What the API may import of drift: names and configuration, no numpy, pandas or scipy."""

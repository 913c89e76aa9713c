"""Drift: reference profiles of training data, statistical tests against current data, reports."""

"""Shared HTTP plumbing: problems, bodies, query parameters, replies, list pages, headers."""

"""Shared HTTP plumbing: problems, request bodies, query parameters, replies, headers."""

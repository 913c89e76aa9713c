"""Webhook endpoints, their secrets, and the log of what was sent to them."""

"""Schedules: when each one runs next, claiming a slot once across beats, and firing it."""

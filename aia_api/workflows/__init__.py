"""The workflow routes: graphs of agent steps, and their runs."""

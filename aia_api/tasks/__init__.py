"""Tasks and their event streams: submit, read, list, cancel, dead letters, SSE and WebSocket."""

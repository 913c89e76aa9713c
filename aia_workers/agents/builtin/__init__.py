"""The agent types AIA ships, each registered by entry point like a third-party one."""

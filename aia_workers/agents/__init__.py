"""Agents: types as plugins (entry point group ``aia.agents``), their runs, messages, workflows."""

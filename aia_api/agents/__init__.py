"""Agents over HTTP: agent types, agents, their runs, and the research agent's corpora."""

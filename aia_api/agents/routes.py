"""Every route of agents, in the order the app mounts them.

Fixed paths (``/v1/agents/types``, and any other a module adds) come before
``/v1/agents/{agent_id}``, which would take them otherwise.
"""

from aia_api.agents import agents, runs, types

__all__ = ["routes"]

routes = [*types.routes, *agents.routes, *runs.routes]

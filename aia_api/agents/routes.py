"""Every route of agents, in the order the app mounts them.

Fixed paths (``/v1/agents/types``, ``/v1/agents/corpora``) come before
``/v1/agents/{agent_id}``, which would take them otherwise.
"""

from aia_api.agents import agents, corpora, mailbox_stream, messages, runs, types

__all__ = ["routes"]

routes = [
    *types.routes,
    *corpora.routes,
    *agents.routes,
    *runs.routes,
    *messages.routes,
    *mailbox_stream.routes,
]

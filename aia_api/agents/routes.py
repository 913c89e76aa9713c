"""Every route of agents, in the order the app mounts them."""

from aia_api.agents import corpora

__all__ = ["routes"]

routes = [
    *corpora.routes,
]

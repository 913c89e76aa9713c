"""Every route of operations, in the order the app mounts them."""

from aia_api.ops import docs, health

__all__ = ["routes"]

routes = [*health.routes, *docs.routes]

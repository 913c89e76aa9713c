"""Every route of tasks and their streams, in the order the app mounts them."""

from aia_api.tasks import deadletters, lifecycle, streams

__all__ = ["routes"]

routes = [*lifecycle.routes, *deadletters.routes, *streams.routes]

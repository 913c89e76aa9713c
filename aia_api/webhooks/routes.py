"""Every webhook route, in the order the app mounts them."""

from aia_api.webhooks import deliveries, endpoints

__all__ = ["routes"]

routes = [*endpoints.routes, *deliveries.routes]

"""Every route of identity and access, in the order the app mounts them."""

from aia_api.identity import audit, keys, login, mfa, session

__all__ = ["PUBLIC_PATHS", "routes"]

PUBLIC_PATHS = (*login.PUBLIC_PATHS, *session.PUBLIC_PATHS)
routes = [*login.routes, *session.routes, *mfa.routes, *keys.routes, *audit.routes]

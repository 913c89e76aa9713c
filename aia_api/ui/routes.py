"""``/ui``: the dashboard page and its assets, from the package (no CDN, no build step).

The page is plain ES modules and one stylesheet. Its Content-Security-Policy
lets it run only its own scripts and styles and talk only to this origin:
nothing inline, nothing from elsewhere, never framed. It signs in at
``/v1/auth/session`` and from then on calls the API with the session cookie.
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.openapi import Reply, Tag, operation, path_param
from aia_api.http.problems import Problem

__all__ = ["PUBLIC_PATHS", "PUBLIC_PREFIXES", "UI_POLICY", "routes"]

UI_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PUBLIC_PATHS = ("/ui",)
PUBLIC_PREFIXES = ("/ui/static/",)

_UI = Tag("dashboard", "The web dashboard (HTML, scripts, styles) at /ui.")
_ASSET = path_param("Asset", "name", "A file of the dashboard, such as `app.js`.")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$")
_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
# The assets change only with a release: a browser checks again on each load
# (no-cache), which costs a 304 at most.
_HEADERS = {"Content-Security-Policy": UI_POLICY, "Cache-Control": "no-cache"}


@functools.cache
def _assets() -> dict[str, bytes]:
    """Every file of the page, read once: a few tens of kilobytes."""
    folder = files("aia_api.ui").joinpath("static")
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


def _asset(name: str) -> bytes | None:
    return _assets().get(name)


@operation(
    id="dashboard",
    summary="The dashboard",
    tag=_UI,
    responses={200: Reply("The page.", content={"text/html": {"schema": {"type": "string"}}})},
    description=(
        "Public (it holds no data): it signs in at /v1/auth/session and reads the API "
        "with the session cookie."
    ),
    public=True,
)
async def page(_: Request) -> Response:
    body = _asset("index.html") or b""
    return Response(body, media_type="text/html; charset=utf-8", headers=_HEADERS)


@operation(
    id="dashboardAsset",
    summary="A file of the dashboard",
    tag=_UI,
    responses={
        200: Reply(
            "A script, stylesheet or image.",
            content={
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
                "image/svg+xml": {"schema": {"type": "string"}},
            },
        )
    },
    errors=("404",),
    parameters=(_ASSET,),
    public=True,
)
async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    match = _NAME.match(name)
    body = _asset(name) if match else None
    if match is None or body is None:
        raise Problem(404, "not-found", "Not found", f"the dashboard has no file {name!r}")
    return Response(body, media_type=_TYPES[match.group(1)], headers=_HEADERS)


routes = [
    Route("/ui", page, methods=["GET"]),
    Route("/ui/static/{name}", asset, methods=["GET"]),
]

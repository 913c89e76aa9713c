"""The OpenAPI document is assembled from the declarations beside the handlers.

``openapi_v1.json`` is the document as it stood when its paths were still
written out by hand in tables apart from the routes: assembling it from the
handlers changed nothing a client sees but that the `audit` tag its
operation always carried is listed with the others. Since then: the blocked-URL
rules are in createWebhook's description, and the Location header its 201 and
the test delivery's 202 send is documented. New capabilities add their routes to it
(feedback, retraining, drift checks and reports, the drift gauges /metrics names,
`/v1/schedules`, `/v1/agents`, the research agent's `/v1/agents/corpora`, agents' mailboxes
(`/v1/agents/{agent_id}/messages`) and `/v1/workflows`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from aia_api.app import ROUTES
from aia_api.http.openapi import Operation, Reply, Tag, declared, operation
from aia_api.ops.openapi import build_openapi
from aia_api.ops.openapi.assembly import Undocumented, assemble

SNAPSHOT = Path(__file__).with_name("openapi_v1.json")


def _normal(document: dict[str, Any]) -> Any:
    return json.loads(json.dumps(document))


def test_the_assembled_document_is_the_one_clients_know() -> None:
    expected = json.loads(SNAPSHOT.read_text())
    assert _normal(build_openapi()) == expected


def test_every_mounted_route_is_declared() -> None:
    assembly = assemble(ROUTES)
    operations = sum(len(methods) for methods in assembly.operations.values())
    assert operations + len(assembly.websockets) == len(
        [m for r in ROUTES for m in (getattr(r, "methods", None) or {"WS"}) if m != "HEAD"]
    )


def test_a_permission_the_description_names_is_the_declared_one() -> None:
    checked = 0
    for route in ROUTES:
        decl = declared(route.endpoint)
        if not isinstance(decl, Operation):
            continue
        named = re.findall(r"Needs `([a-z]+:[a-z]+)`", decl.description or "")
        assert named in ([], [decl.permission]), (route.path, named, decl.permission)
        checked += bool(named)
    assert checked


def test_a_route_without_a_declaration_is_refused() -> None:
    async def handler(_: Any) -> None:
        return None

    tag = Tag("t", "A tag.")
    documented = operation(id="x", summary="X", tag=tag, responses={200: Reply("ok")})(handler)
    assert assemble([Route("/x", documented)]).operations["/x"]["get"].id == "x"

    async def bare(_: Any) -> None:
        return None

    with pytest.raises(Undocumented, match="/y"):
        assemble([Route("/y", bare)])

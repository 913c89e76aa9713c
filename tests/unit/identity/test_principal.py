"""Principal.actor: the one spelling of who acted, which stored audit rows already hold."""

from __future__ import annotations

import pytest

from aia_api.identity.principal import Principal
from aia_api.identity.roles import Role


@pytest.mark.parametrize(
    ("kind", "ident", "actor"),
    [("user", "u-1", "user:u-1"), ("key", "3f9a", "key:3f9a")],
)
def test_actor_is_kind_and_id(kind: str, ident: str, actor: str) -> None:
    assert Principal(kind, ident, "t1", Role.VIEWER).actor == actor


def test_actor_leaves_out_tenant_and_role() -> None:
    admin = Principal("user", "u-1", "t1", Role.ADMIN, mfa=True)
    viewer = Principal("user", "u-1", "t2", Role.VIEWER)
    assert admin.actor == viewer.actor

"""The Principal: who a request acts for, once its credentials are checked."""

from __future__ import annotations

from dataclasses import dataclass

from aia_api.identity.roles import Permission, Role, permissions_for

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "user" or "key"
    id: str
    tenant: str
    role: Role
    # A person whose session passed the second factor, with MFA still on.
    mfa: bool = False

    @property
    def actor(self) -> str:
        """Who acted, as audit entries, ``created_by`` fields and rate limits name them."""
        return f"{self.kind}:{self.id}"

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_for(self.role)

    def can(self, permission: Permission | str) -> bool:
        return permission in self.permissions

"""The Principal: who a request acts for, once its credentials are checked."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    # Who acted, as audit entries, ``created_by`` fields and rate limits name
    # them. Spelled once: a cached principal serves thousands of requests a
    # second, each of which names its actor to the rate limiter.
    actor: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "actor", f"{self.kind}:{self.id}")

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_for(self.role)

    def can(self, permission: Permission | str) -> bool:
        return permission in self.permissions

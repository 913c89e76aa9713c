"""Failed-login throttling: a wait that grows with the failures, never a lock a stranger sets.

Every login attempt is charged, before its password is checked, against three
budgets in one Lua call, so a parallel burst cannot slip between a check and
its count:

- the account from this client address, the strictest;
- the account from every address it has not logged in from lately, which only
  a guess spread over many addresses spends;
- the address across all accounts, which password spraying spends.

Past a budget, each further attempt must wait, the wait doubling from the
first delay up to the longest, and is answered 429 with Retry-After meanwhile.
A login that succeeds takes back its charge, clears the account's count from
its address and marks that address as known to the account. So a stranger's
failures slow the stranger: the owner's address has a budget of its own, and
a known address skips the account-wide one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import redis.asyncio as aioredis

from aia_workers.settings import Settings

__all__ = ["LoginAttempt", "LoginPolicy", "LoginThrottle"]

# How long a successful login vouches for its address: long enough to cover
# someone who logs in once a month from home.
_KNOWN_ADDRESS_SECONDS = 30 * 86_400

# The budgets in the order the scripts take them (KEYS[1..3], ARGV[1..3]).
_BUDGETS = ("account+address", "account", "address")

# Checks every budget, then counts the attempt against each and sets the time
# the next attempt may come, in one atomic step. Redis's own clock, so every
# API process measures waits alike. The account-wide budget is left out when
# the address is known (KEYS[4]). A count outlives its wait by the window.
# Redis 6.2 replicates a script by its effects, so TIME before a write is fine.
# Returns {milliseconds to wait, a bit per budget this attempt spent, known}.
_ATTEMPT_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local known = redis.call('EXISTS', KEYS[4])
local wait = 0
for i = 1, 3 do
  if i ~= 2 or known == 0 then
    local state = redis.call('HMGET', KEYS[i], 'n', 'next')
    local n = tonumber(state[1]) or 0
    local ready = tonumber(state[2]) or 0
    if n >= tonumber(ARGV[i]) and ready > now then wait = math.max(wait, ready - now) end
  end
end
if wait > 0 then return {wait, 0, known} end
local spent = 0
for i = 1, 3 do
  if i ~= 2 or known == 0 then
    local budget = tonumber(ARGV[i])
    local n = redis.call('HINCRBY', KEYS[i], 'n', 1)
    local delay = 0
    if n >= budget then
      delay = math.floor(math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (n - budget)))
      redis.call('HSET', KEYS[i], 'next', now + delay)
      if n == budget then spent = spent + 2 ^ (i - 1) end
    end
    redis.call('PEXPIRE', KEYS[i], delay + tonumber(ARGV[6]))
  end
end
return {0, spent, known}
"""

# A login succeeded: forget the account's failures from this address, take
# back what the attempt charged the other budgets, and vouch for the address.
_SUCCEEDED_LUA = """
redis.call('DEL', KEYS[1])
for i = 2, 3 do
  if (i ~= 2 or ARGV[2] == '1') and redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'n', -1)
  end
end
redis.call('SET', KEYS[4], 1, 'PX', ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """The budgets (failed logins) and waits of the throttle."""

    per_account_and_address: int
    per_account: int
    per_address: int
    first_delay_seconds: float
    max_delay_seconds: float
    window_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        return cls(
            per_account_and_address=settings.login_max_failures,
            per_account=settings.login_account_max_failures,
            per_address=settings.login_address_max_failures,
            first_delay_seconds=settings.login_delay_seconds,
            max_delay_seconds=settings.login_max_delay_seconds,
            window_seconds=settings.login_failure_window_seconds,
        )


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One login attempt, counted as a failure until :meth:`LoginThrottle.succeeded`."""

    keys: tuple[str, str, str, str]
    retry_after: int
    # The budgets this attempt spent (named as in _BUDGETS): from the next
    # failure on, each waits.
    spent: tuple[str, ...]
    known_address: bool

    @property
    def refused(self) -> bool:
        return self.retry_after > 0


class LoginThrottle:
    """Charges login attempts against the budgets of a :class:`LoginPolicy`, in Redis."""

    def __init__(self, client: aioredis.Redis, policy: LoginPolicy) -> None:
        self._policy = policy
        self._attempt = client.register_script(_ATTEMPT_LUA)
        self._succeeded = client.register_script(_SUCCEEDED_LUA)

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str, str, str]:
        # Hashed: fixed-length keys, and no delimiter a username could forge.
        account = hashlib.sha256(username.encode()).hexdigest()[:32]
        return (
            f"aia:login:pair:{account}:{address}",
            f"aia:login:acct:{account}",
            f"aia:login:addr:{address}",
            f"aia:login:known:{account}:{address}",
        )

    async def attempt(self, username: str, address: str) -> LoginAttempt:
        """Charge one attempt at ``username`` from ``address``, or refuse it for a while."""
        policy = self._policy
        keys = self._keys(username, address)
        wait_ms, spent, known = await self._attempt(
            keys=list(keys),
            args=[
                policy.per_account_and_address,
                policy.per_account,
                policy.per_address,
                int(policy.first_delay_seconds * 1000),
                int(policy.max_delay_seconds * 1000),
                policy.window_seconds * 1000,
            ],
        )
        return LoginAttempt(
            keys=keys,
            retry_after=math.ceil(int(wait_ms) / 1000),
            spent=tuple(name for bit, name in enumerate(_BUDGETS) if int(spent) & (1 << bit)),
            known_address=bool(int(known)),
        )

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The attempt logged in: it was no failure."""
        await self._succeeded(
            keys=list(attempt.keys),
            args=[_KNOWN_ADDRESS_SECONDS * 1000, "0" if attempt.known_address else "1"],
        )

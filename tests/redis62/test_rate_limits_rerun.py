"""The integration tests of the rate limiter, run against Redis 6.2.

They use ``redis_url`` (and ``database_url``), which this folder's conftest
points at the 6.2 server.
"""

from tests.integration.identity.test_rate_limits import *  # noqa: F403

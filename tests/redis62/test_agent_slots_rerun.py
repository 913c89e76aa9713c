"""The per-agent concurrency tests (admit, release, settle scripts), run against Redis 6.2.

They use ``redis_url``, which this folder's conftest points at the 6.2 server.
"""

from tests.integration.agents.test_concurrency import *  # noqa: F403

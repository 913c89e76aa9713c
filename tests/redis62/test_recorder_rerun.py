"""The integration tests of the recorder's stream consumption and claims, run against Redis 6.2.

They use ``redis_url`` (and ``database_url``), which this folder's conftest
points at the 6.2 server.
"""

from tests.integration.backbone.test_recorder import *  # noqa: F403

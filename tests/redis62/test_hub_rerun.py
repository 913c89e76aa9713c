"""The integration tests of the API's pub/sub hub, run against Redis 6.2.

They use ``redis_url`` (and ``database_url``), which this folder's conftest
points at the 6.2 server.
"""

from tests.integration.backbone.test_hub import *  # noqa: F403

"""The integration tests of the API's batched script calls, run against Redis 6.2.

They use ``redis_url``, which this folder's conftest points at the 6.2 server.
"""

from tests.integration.backbone.test_batching import *  # noqa: F403

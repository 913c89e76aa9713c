"""The integration tests of the broker message the submit script enqueues, on Redis 6.2.

They use ``redis_url``, which this folder's conftest points at the 6.2 server.
"""

from tests.integration.backbone.test_broker_message import *  # noqa: F403

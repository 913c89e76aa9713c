"""The stream slot tests against Redis 6.2 (TIME inside a script that then writes).

They use ``redis_url``, which this folder's conftest points at the 6.2 server.
"""

from tests.integration.tasks.test_stream_slots import *  # noqa: F403

"""The fair-share tests of the transition, put-back and renewal scripts, run against Redis 6.2.

They use ``redis_url``, which this folder's conftest points at the 6.2 server.
"""

from tests.integration.backbone.test_fairness import *  # noqa: F403

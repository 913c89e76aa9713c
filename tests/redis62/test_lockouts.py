"""The failed-login throttle's integration tests, run against Redis 6.2.

Its Lua reads Redis's clock before writing, which a 6.2 server allows only
because it replicates scripts by their effects; these runs keep that honest.
"""

from tests.integration.identity.test_login_throttle import *  # noqa: F403

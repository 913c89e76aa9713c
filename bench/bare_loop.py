"""The floor of e2e_latency.py: BRPOP a list, PUBLISH what came on the channel it names.

A message is ``<channel> <token>``; the consumer publishes ``token`` on
``channel``. One process, one connection, nothing else.

    python bench/bare_loop.py redis://127.0.0.1:6379/15 <list key>
"""

from __future__ import annotations

import sys

import redis


def main() -> int:
    url, key = sys.argv[1], sys.argv[2]
    # A read waits at most a second past BRPOP's own timeout.
    client = redis.Redis.from_url(url, socket_timeout=2)
    while True:
        popped = client.brpop([key], timeout=1)
        if popped is None:
            continue
        channel, _, token = popped[1].partition(b" ")
        client.publish(channel, token)


if __name__ == "__main__":
    sys.exit(main())

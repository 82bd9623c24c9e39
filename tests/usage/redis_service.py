"""The Redis that the counter tests use, and failing or skipping clearly when it is not there.

Tests use `TEST_REDIS_URL`, else `settings.REDIS_URL` (CI sets it), else
`redis://127.0.0.1:6379/15`, and keys under a prefix of their own that they delete
afterwards (`delete_keys`). With `settings.REQUIRE_SERVICES` on (CI), a missing Redis fails
the test; otherwise the test is skipped and the reason names the URL it tried.
"""

import os

import pytest
import redis
from django.conf import settings

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_url_for_tests() -> str:
    return os.environ.get("TEST_REDIS_URL") or getattr(settings, "REDIS_URL", "") or DEFAULT_TEST_REDIS_URL


def require_redis(*, url: str | None = None) -> str:
    """A Redis URL that answers PING; otherwise fail (REQUIRE_SERVICES) or skip the calling test."""
    url = url or redis_url_for_tests()
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis is not reachable at {url} ({type(exc).__name__}); set TEST_REDIS_URL or start Redis."
        if settings.REQUIRE_SERVICES:
            pytest.fail(f"{reason} REQUIRE_SERVICES is on, so this is a failure, not a skip.")
        pytest.skip(reason)
    finally:
        client.close()
    return url


def delete_keys(*, url: str, prefix: str) -> int:
    """Delete every key under `prefix` (a test's own); returns how many there were."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted

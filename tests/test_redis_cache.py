"""One Redis client and connection pool per process for the cache (core/redis_cache.py, issue 10).

Django's cache handler gives every thread and every async context (under ASGI: every request)
its own backend instance, and Django's `RedisCache` builds a client and a pool per instance:
each request opened a TCP connection to Redis of its own. These tests show that, and that
`SharedRedisCache` serves every instance from one pool whose connections are reused.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from copilot_admin.core.redis_cache import SharedRedisCache, shared_clients_reset
from tests.conftest import require_service


@pytest.fixture
def redis_url():
    require_service("Redis", bool(settings.REDIS_URL), "REDIS_URL is not set")
    shared_clients_reset()
    yield settings.REDIS_URL
    shared_clients_reset()


def _pools(backend) -> list:
    return list(backend._cache._pools.values())


def _one_read_per_context(make_backend, contexts: int) -> list:
    """`contexts` requests one after another, each in its own async context with the backend
    instance the cache handler would give it; the backends used."""
    used = []

    async def request() -> None:
        backend = make_backend()
        backend.get("redis-cache-probe")
        used.append(backend)

    for _ in range(contexts):
        asyncio.run(request())
    return used


def test_the_cache_handler_gives_each_thread_its_own_backend_instance():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(caches["default"]))
    thread.start()
    thread.join()
    assert seen[0] is not caches["default"]


def test_djangos_redis_cache_opens_a_connection_pool_per_backend_instance(redis_url):
    used = _one_read_per_context(lambda: RedisCache(redis_url, {}), contexts=5)
    pools = {id(pool) for backend in used for pool in _pools(backend)}
    assert len(pools) == 5  # a new pool, and a new connection, per request


def test_shared_redis_cache_uses_one_pool_and_reuses_its_connection(redis_url):
    used = _one_read_per_context(lambda: SharedRedisCache(redis_url, {}), contexts=20)
    pools = {id(pool) for backend in used for pool in _pools(backend)}
    assert len(pools) == 1
    (pool,) = _pools(used[0])
    assert pool._created_connections == 1  # sequential requests share one connection


def test_shared_redis_cache_across_threads(redis_url):
    backends = []

    def work() -> None:
        backend = SharedRedisCache(redis_url, {})
        backend.set("redis-cache-probe", "ok", 5)
        assert backend.get("redis-cache-probe") == "ok"
        backends.append(backend)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(backends) == 8
    assert len({id(backend._cache) for backend in backends}) == 1
    (pool,) = _pools(backends[0])
    assert pool._created_connections <= 8


def test_different_options_get_different_clients(redis_url):
    one = SharedRedisCache(redis_url, {})
    other = SharedRedisCache(redis_url, {"OPTIONS": {"socket_timeout": 2}})
    assert one._cache is SharedRedisCache(redis_url, {})._cache
    assert one._cache is not other._cache


def test_settings_use_the_shared_backend_with_redis():
    require_service("Redis", bool(settings.REDIS_URL), "REDIS_URL is not set")
    assert settings.CACHES["default"]["BACKEND"] == "copilot_admin.core.redis_cache.SharedRedisCache"
    assert isinstance(caches["default"], SharedRedisCache)


def test_shared_redis_cache_builds_one_redis_client_per_pool(redis_url, monkeypatch):
    import redis

    built = []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs.get("connection_pool"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    backend = SharedRedisCache(redis_url, {})
    for n in range(10):
        backend.set(f"redis-cache-probe-{n}", n, 5)
        assert backend.get_many([f"redis-cache-probe-{n}"]) == {f"redis-cache-probe-{n}": n}
    assert len(built) == 1


def test_replies_are_parsed_by_hiredis(redis_url):
    # redis[hiredis]: the C reply parser (redis-py falls back to its pure-Python one silently).
    from redis._parsers import _HiredisParser

    backend = SharedRedisCache(redis_url, {})
    backend.get("hiredis-probe")
    connection = _pools(backend)[0].get_connection()
    try:
        assert isinstance(connection._parser, _HiredisParser)
    finally:
        _pools(backend)[0].release(connection)


def test_incr_expiring_counts_and_sets_the_expiry_in_one_round_trip(redis_url, monkeypatch):
    backend = SharedRedisCache(redis_url, {})
    backend.delete("window-probe")
    client = backend._cache.get_client(write=True)
    pipelines = []
    real_pipeline = type(client).pipeline

    def counted(self, *args, **kwargs):
        pipelines.append(kwargs.get("transaction", True))
        return real_pipeline(self, *args, **kwargs)

    monkeypatch.setattr(type(client), "pipeline", counted)
    assert [backend.incr_expiring("window-probe", timeout=120) for _ in range(3)] == [1, 2, 3]
    assert pipelines == [True, True, True]  # one MULTI per count, nothing else sent
    assert backend.get("window-probe") == 3
    assert 0 < client.ttl(backend.make_and_validate_key("window-probe")) <= 120
    backend.delete("window-probe")


def test_window_counts_without_redis_use_add_and_incr(settings):
    from django.core.cache import cache

    from copilot_admin.identity.delegation import _window_count

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "window"}}
    assert not hasattr(cache, "incr_expiring")
    assert [_window_count("window-probe", timeout=60) for _ in range(3)] == [1, 2, 3]

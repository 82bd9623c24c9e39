"""The cache backend on Redis with one client, and one connection pool, per process.

Django's `RedisCache` builds its client (and, on first use, a `redis.ConnectionPool`) per
backend *instance*, and `django.core.cache.caches` hands out an instance per thread and per
async context: under ASGI every request runs in a context of its own, so every request built a
new pool and opened a new TCP connection to Redis for its first cache read, and dropped it
afterwards. `SharedRedisCache` keeps Django's behaviour (serializer, key making, timeouts,
every method) and only makes its client process-wide: every instance with the same location
and options uses the same `RedisCacheClient`, whose pool keeps its connections open and hands
one to each command in turn. The pool is thread-safe (redis-py), and is made afresh in a
forked child (redis-py checks the pid on every checkout).

Configured in settings when `REDIS_URL` is set (`CACHES["default"]`).
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_clients: dict[tuple[Any, ...], RedisCacheClient] = {}
_clients_lock = threading.Lock()


def _client_key(servers: list[str], class_: type, options: dict[str, Any]) -> tuple[Any, ...]:
    return (tuple(servers), class_, repr(sorted(options.items())))


def shared_redis_client(servers: list[str], class_: type = RedisCacheClient, **options: Any) -> RedisCacheClient:
    """The process's one `RedisCacheClient` for these servers and options, made on first use."""
    key = _client_key(servers, class_, options)
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = class_(servers, **options)
    return client


def shared_clients_reset() -> None:
    """Forget the shared clients, disconnecting their pools (tests)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        for pool in list(client._pools.values()):
            pool.disconnect()


class SharedRedisCache(RedisCache):
    """`django.core.cache.backends.redis.RedisCache` whose client and pool are per process,
    not per backend instance (see the module docstring)."""

    @property
    def _cache(self) -> RedisCacheClient:  # RedisCache's own is a cached_property per instance
        return shared_redis_client(self._servers, self._class, **self._options)

    def close(self, **kwargs: Any) -> None:
        """Nothing to close per request: the pool's connections serve the next one."""

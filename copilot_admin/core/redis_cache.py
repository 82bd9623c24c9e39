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


class SharedRedisCacheClient(RedisCacheClient):
    """`RedisCacheClient` that keeps one `redis.Redis` per pool: Django's builds a new one for
    every command (`get_client`), whose constructor costs more CPU than a cached read's round
    trip. A `redis.Redis` over a pool is safe to share between threads (each command checks a
    connection out of the pool)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redis_clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._redis_clients.get(index)
        if client is None:
            with _clients_lock:  # one pool and one client per server, also when threads race here
                client = self._redis_clients.get(index)
                if client is None:
                    pool = self._pools.get(index)
                    if pool is None:
                        pool = self._pools[index] = self._pool_class.from_url(
                            self._servers[index], **self._pool_options)
                    client = self._redis_clients[index] = self._client(connection_pool=pool)
        return client


class SharedRedisCache(RedisCache):
    """`django.core.cache.backends.redis.RedisCache` whose client and pool are per process,
    not per backend instance (see the module docstring)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedRedisCacheClient

    @property
    def _cache(self) -> RedisCacheClient:  # RedisCache's own is a cached_property per instance
        return shared_redis_client(self._servers, self._class, **self._options)

    def incr_expiring(self, key: str, *, timeout: int, version: int | None = None) -> int:
        """Add 1 to the counter `key` (a missing one starts at 0) and set it to expire in
        `timeout` seconds, in one round trip (INCR and EXPIRE in a MULTI); the count afterwards.
        The counter stays readable with `get`. Window counters (an integration key's rate)."""
        key = self.make_and_validate_key(key, version=version)
        with self._cache.get_client(key, write=True).pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, timeout)
            count, _ = pipe.execute()
        return count

    def close(self, **kwargs: Any) -> None:
        """Nothing to close per request: the pool's connections serve the next one."""

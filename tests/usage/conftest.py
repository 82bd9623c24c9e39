"""Fixtures for the limit counters: a controllable clock and both backends behind one fixture."""

import uuid
from datetime import UTC, datetime

import pytest

from copilot_admin.usage.counters import DatabaseCounterBackend, RedisCounterBackend
from tests.usage.redis_service import delete_keys, require_redis


class FakeClock:
    """A clock that only moves when a test moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 20, 10, 17, 42, tzinfo=UTC))


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def redis_prefix(redis_url):
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"test-limits:{uuid.uuid4().hex}:"
    yield prefix
    delete_keys(url=redis_url, prefix=prefix)


@pytest.fixture
def redis_backend(redis_url, redis_prefix, clock) -> RedisCounterBackend:
    return RedisCounterBackend(url=redis_url, key_prefix=redis_prefix, clock=clock)


@pytest.fixture
def database_backend(request, clock) -> DatabaseCounterBackend:
    # Threaded tests mark themselves django_db(transaction=True, serialized_rollback=True), which
    # this request honours; the others run inside the test's transaction.
    request.getfixturevalue("db")
    return DatabaseCounterBackend(clock=clock)


@pytest.fixture(params=["redis", "database"])
def backend(request):
    """Each behaviour test runs against both backends."""
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def clocked(monkeypatch, request):
    """The per-call limit check on a database counter backend whose clock the test moves:
    (clock, backend)."""
    from copilot_admin.usage import admission

    request.getfixturevalue("db")
    clock = FakeClock(datetime(2026, 11, 20, 10, 17, 5, tzinfo=UTC))
    backend = DatabaseCounterBackend(clock=clock)
    monkeypatch.setattr(admission, "get_counter_backend", lambda: backend)
    return clock, backend


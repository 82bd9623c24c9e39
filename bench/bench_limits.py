"""Benchmark of the limit counters; prints one JSON object.

1. History independence (Redis): the median wall time of one `reserve` of a realistic
   five-window check against a Redis database holding 1,000,000 prior increments spread
   over 250,000 keys in the engine's own key layout, and against an empty database of the
   same server. Samples alternate between the two in rounds, so load on the machine hits
   both alike. The ratio (history / empty) should stay near 1: a check touches a fixed
   number of keys whatever the history.
2. The same for the database backend on SQLite (the `make run` configuration): a temporary
   database holding 200,000 counter rows of past windows against an empty one, alternating.
3. Exactness under concurrency: 50 threads make 1,000 attempts against a limit of 200 in
   Redis, 500 against 100 in the database; admitted must equal allowed.

Environment: `BENCH_REDIS_URL` (default `redis://127.0.0.1:6379/15`; the empty baseline uses
the database number below it; the bench writes under its own key prefix in both and deletes
it afterwards). The database part uses two temporary SQLite files, deleted afterwards; the
database backend's behaviour on PostgreSQL is proven by tests/usage. Runs in about a minute.
"""

import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SQLITE_DIRECTORY = Path(tempfile.mkdtemp(prefix="bench-limits-"))
os.environ["DATABASE_URL"] = f"sqlite:///{SQLITE_DIRECTORY / 'history.sqlite3'}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402
from django.conf import settings  # noqa: E402

# A second database, "empty", for the baseline; declared before any connection is made.
settings.DATABASES["empty"] = {**settings.DATABASES["default"], "NAME": str(SQLITE_DIRECTORY / "empty.sqlite3")}
django.setup()

from django.db import connections  # noqa: E402

from copilot_admin.usage.counters import (  # noqa: E402
    TTL_MARGIN_SECONDS,
    CounterBackend,
    DatabaseCounterBackend,
    LimitCheck,
    LimitWindow,
    RedisCounterBackend,
    Window,
)
from copilot_admin.usage.models import LimitCounter  # noqa: E402

HISTORY_INCREMENTS = 1_000_000
HISTORY_KEYS = 250_000
DATABASE_HISTORY_ROWS = 200_000
USERS = 1_000
SAMPLES = 4_000
DATABASE_SAMPLES = 300
THREADS = 50
ATTEMPTS = 1_000
ALLOWED = 200
# SQLite commits wait for the disk (milliseconds each), so the database round is smaller.
DATABASE_ATTEMPTS = 500
DATABASE_ALLOWED = 100
BIG = 10**12


def call_check(user: int, *, prefix: str = "") -> LimitCheck:
    """What one copilot call checks: the user's requests per minute/hour/day, its tokens per day, the tenant's."""
    tenant = user % 20
    return LimitCheck(
        windows=(
            LimitWindow(key=f"{prefix}u:{user}:requests", window=Window.MINUTE, limit=BIG),
            LimitWindow(key=f"{prefix}u:{user}:requests", window=Window.HOUR, limit=BIG),
            LimitWindow(key=f"{prefix}u:{user}:requests", window=Window.DAY, limit=BIG),
            LimitWindow(key=f"{prefix}u:{user}:tokens", window=Window.DAY, limit=BIG, amount=800),
            LimitWindow(key=f"{prefix}t:{tenant}:tokens", window=Window.DAY, limit=BIG, amount=800),
        )
    )


def reserve_timings(backend: CounterBackend, *, samples: int, offset: int = 0, prefix: str = "") -> list[float]:
    timings = []
    for index in range(offset, offset + samples):
        limits = call_check((index * 7919) % USERS, prefix=prefix)
        started = time.perf_counter()
        backend.reserve(check=limits)
        timings.append(time.perf_counter() - started)
    return timings


def median_reserve_microseconds(backend: CounterBackend, *, samples: int, prefix: str = "") -> float:
    reserve_timings(backend, samples=50, prefix=prefix)  # warm up: connection, statements
    return round(statistics.median(reserve_timings(backend, samples=samples, prefix=prefix)) * 1e6, 1)


def interleaved_medians(
    first: CounterBackend, second: CounterBackend, *, samples: int, rounds: int = 10
) -> tuple[float, float]:
    """Median reserve time of each backend, measured in alternating rounds (microseconds)."""
    reserve_timings(first, samples=50)
    reserve_timings(second, samples=50)
    timings: tuple[list[float], list[float]] = ([], [])
    per_round = samples // rounds
    for round_number in range(rounds):
        for backend, sink in ((first, timings[0]), (second, timings[1])):
            sink += reserve_timings(backend, samples=per_round, offset=round_number * per_round)
    return tuple(round(statistics.median(sink) * 1e6, 1) for sink in timings)


def baseline_url(url: str) -> str:
    """The same Redis server, the database number below the bench's (1 for database 0)."""
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{number - 1 if number > 0 else 1}"))


def fill_redis_history(backend: RedisCounterBackend) -> float:
    """1,000,000 increments over 250,000 counters of past and present buckets, pipelined."""
    started = time.perf_counter()
    now = int(time.time())
    kinds = [Window.MINUTE, Window.HOUR, Window.DAY]
    pipe = backend.client.pipeline(transaction=False)
    for index in range(HISTORY_INCREMENTS):
        slot = index % HISTORY_KEYS
        window = kinds[slot % 3]
        bucket = (now // window.seconds - (slot // 3) % 10) * window.seconds
        key = backend.storage_key(key=f"u:{slot % USERS}:requests", window=window, window_start=bucket)
        pipe.incrby(key, 1)
        if index < HISTORY_KEYS:
            pipe.expire(key, 3600 + TTL_MARGIN_SECONDS)
        if index % 20_000 == 19_999:
            pipe.execute()
    pipe.execute()
    return round(time.perf_counter() - started, 2)


def delete_redis_prefix(backend: RedisCounterBackend, prefix: str) -> None:
    batch = []
    for key in backend.client.scan_iter(match=f"{prefix}*", count=5_000):
        batch.append(key)
        if len(batch) >= 5_000:
            backend.client.unlink(*batch)
            batch.clear()
    if batch:
        backend.client.unlink(*batch)


def concurrency(backend: CounterBackend, *, key: str, attempts: int = ATTEMPTS, allowed: int = ALLOWED) -> dict:
    """THREADS threads make `attempts` reservations in total against a limit of `allowed`."""
    limits = LimitCheck(windows=(LimitWindow(key=key, window=Window.HOUR, limit=allowed),))
    barrier = threading.Barrier(THREADS)
    admitted = []
    errors = []

    def worker() -> None:
        try:
            barrier.wait()
            mine = sum(backend.reserve(check=limits).allowed for _ in range(attempts // THREADS))
            admitted.append(mine)
        except Exception as exc:  # noqa: BLE001 - reported in the output
            errors.append(repr(exc))
        finally:
            connections.close_all()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "threads": THREADS,
        "attempts": attempts,
        "allowed": allowed,
        "admitted": sum(admitted),
        "exact": sum(admitted) == allowed and not errors,
        "errors": errors[:3],
        "seconds": round(time.perf_counter() - started, 2),
    }


def bench_redis() -> dict:
    prefix = f"bench-limits:{uuid.uuid4().hex}:"
    backend = RedisCounterBackend(url=REDIS_URL, key_prefix=prefix)
    empty_backend = RedisCounterBackend(url=baseline_url(REDIS_URL), key_prefix=prefix)
    try:
        backend.client.ping()
    except Exception as exc:  # noqa: BLE001
        return {"error": f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}"}
    try:
        fill_seconds = fill_redis_history(backend)
        with_history, empty = interleaved_medians(backend, empty_backend, samples=SAMPLES)
        return {
            "history_increments": HISTORY_INCREMENTS,
            "history_keys": HISTORY_KEYS,
            "history_fill_seconds": fill_seconds,
            "median_reserve_us_empty": empty,
            "median_reserve_us_after_history": with_history,
            "ratio_after_to_empty": round(with_history / empty, 3),
            "concurrency": concurrency(backend, key="concurrency"),
        }
    finally:
        for used_backend in (backend, empty_backend):
            delete_redis_prefix(used_backend, prefix)
            used_backend.client.close()


def bench_database() -> dict:
    for alias in ("default", "empty"):
        with connections[alias].schema_editor() as editor:
            editor.create_model(LimitCounter)
    started = time.perf_counter()
    now = datetime.now(tz=UTC)
    batch = []
    windows = [("minute", 60), ("hour", 3600), ("day", 86400), ("day", 86400)]
    for index in range(DATABASE_HISTORY_ROWS):
        user, slot = index % USERS, (index // USERS) % len(windows)
        window, seconds = windows[slot]
        unit = "tokens" if slot == 3 else "requests"
        age = 1 + index // (USERS * len(windows))
        bucket = datetime.fromtimestamp((int(now.timestamp()) // seconds - age) * seconds, tz=UTC)
        batch.append(
            LimitCounter(
                key=f"{window}:u:{user}:{unit}",
                window_start=bucket,
                used=index % 50 + 1,
                expires_at=bucket + timedelta(seconds=seconds + TTL_MARGIN_SECONDS),
            )
        )
        if len(batch) == 10_000:
            LimitCounter.objects.bulk_create(batch)
            batch.clear()
    fill_seconds = round(time.perf_counter() - started, 2)
    with_history, empty = interleaved_medians(
        DatabaseCounterBackend(), DatabaseCounterBackend(using="empty"), samples=DATABASE_SAMPLES
    )
    return {
        "engine": "sqlite",
        "history_rows": DATABASE_HISTORY_ROWS,
        "history_fill_seconds": fill_seconds,
        "median_reserve_us_empty": empty,
        "median_reserve_us_after_history": with_history,
        "ratio_after_to_empty": round(with_history / empty, 3),
        "concurrency": concurrency(
            DatabaseCounterBackend(using="empty"),
            key="concurrency",
            attempts=DATABASE_ATTEMPTS,
            allowed=DATABASE_ALLOWED,
        ),
    }


def main() -> None:
    started = time.perf_counter()
    result = {"benchmark": "limits", "redis": bench_redis(), "database": bench_database()}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    try:
        main()
    finally:
        connections.close_all()
        shutil.rmtree(SQLITE_DIRECTORY, ignore_errors=True)


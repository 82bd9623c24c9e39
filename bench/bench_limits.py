"""Benchmark of the limit counters; prints one JSON object.

1. History independence (Redis): the median wall time of one `reserve` of a realistic
   five-window check with an empty history, then again after 1,000,000 prior increments
   spread over many keys in the engine's own key layout. The ratio (after / empty) should
   stay near 1: the check touches a fixed number of keys whatever the history.
2. The same for the database backend, after 200,000 prior counter rows.
3. Exactness under concurrency: 50 threads make 1,000 attempts against a limit of 200;
   admitted must equal allowed, for Redis and for the database.

Environment: `BENCH_REDIS_URL` (default `redis://127.0.0.1:6379/15`; the bench writes under
its own key prefix and deletes it afterwards), `BENCH_DATABASE_URL` (default: a temporary
SQLite file, the `make run` configuration; on another database the bench creates the
counter table only if it is missing and deletes only its own rows). Runs in about a minute.
"""

import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
_temporary_sqlite = None
if os.environ.get("BENCH_DATABASE_URL"):
    os.environ["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
else:
    _temporary_sqlite = Path(tempfile.mkdtemp(prefix="bench-limits-")) / "bench.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{_temporary_sqlite}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.db import connection, connections  # noqa: E402

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
SAMPLES = 2_000
DATABASE_SAMPLES = 400
THREADS = 50
ATTEMPTS = 1_000
ALLOWED = 200
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


def median_reserve_microseconds(backend: CounterBackend, *, samples: int, prefix: str = "") -> float:
    for user in range(50):  # warm up: connection, script cache
        backend.reserve(check=call_check(user, prefix=prefix))
    timings = []
    for index in range(samples):
        limits = call_check((index * 7919) % USERS, prefix=prefix)
        started = time.perf_counter()
        backend.reserve(check=limits)
        timings.append(time.perf_counter() - started)
    return round(statistics.median(timings) * 1e6, 1)


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


def concurrency(backend: CounterBackend, *, key: str) -> dict:
    """THREADS threads make ATTEMPTS reservations in total against a limit of ALLOWED."""
    limits = LimitCheck(windows=(LimitWindow(key=key, window=Window.HOUR, limit=ALLOWED),))
    barrier = threading.Barrier(THREADS)
    admitted = []
    errors = []

    def worker() -> None:
        try:
            barrier.wait()
            mine = sum(backend.reserve(check=limits).allowed for _ in range(ATTEMPTS // THREADS))
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
        "attempts": ATTEMPTS,
        "allowed": ALLOWED,
        "admitted": sum(admitted),
        "exact": sum(admitted) == ALLOWED and not errors,
        "errors": errors[:3],
        "seconds": round(time.perf_counter() - started, 2),
    }


def bench_redis() -> dict:
    prefix = f"bench-limits:{uuid.uuid4().hex}:"
    backend = RedisCounterBackend(url=REDIS_URL, key_prefix=prefix)
    try:
        backend.client.ping()
    except Exception as exc:  # noqa: BLE001
        return {"error": f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}"}
    try:
        empty = median_reserve_microseconds(backend, samples=SAMPLES)
        fill_seconds = fill_redis_history(backend)
        after = median_reserve_microseconds(backend, samples=SAMPLES)
        return {
            "history_increments": HISTORY_INCREMENTS,
            "history_keys": HISTORY_KEYS,
            "history_fill_seconds": fill_seconds,
            "median_reserve_us_empty": empty,
            "median_reserve_us_after_history": after,
            "ratio_after_to_empty": round(after / empty, 3),
            "concurrency": concurrency(backend, key="concurrency"),
        }
    finally:
        delete_redis_prefix(backend, prefix)
        backend.client.close()


def bench_database() -> dict:
    created = False
    if LimitCounter._meta.db_table not in connection.introspection.table_names():
        with connection.schema_editor() as editor:
            editor.create_model(LimitCounter)
        created = True
    prefix = f"bench-{uuid.uuid4().hex[:12]}:"
    backend = DatabaseCounterBackend()
    try:
        empty = median_reserve_microseconds(backend, samples=DATABASE_SAMPLES, prefix=prefix)
        started = time.perf_counter()
        start = datetime.now(tz=UTC).replace(minute=0, second=0, microsecond=0)
        batch = []
        for index in range(DATABASE_HISTORY_ROWS):
            window_start = start - timedelta(hours=1 + index // 5_000)
            batch.append(
                LimitCounter(
                    key=f"hour:{prefix}u:{index % 5_000}:requests",
                    window_start=window_start,
                    used=index % 50 + 1,
                    expires_at=window_start + timedelta(hours=2),
                )
            )
            if len(batch) == 10_000:
                LimitCounter.objects.bulk_create(batch)
                batch.clear()
        fill_seconds = round(time.perf_counter() - started, 2)
        after = median_reserve_microseconds(backend, samples=DATABASE_SAMPLES, prefix=prefix)
        return {
            "engine": connection.vendor,
            "history_rows": DATABASE_HISTORY_ROWS,
            "history_fill_seconds": fill_seconds,
            "median_reserve_us_empty": empty,
            "median_reserve_us_after_history": after,
            "ratio_after_to_empty": round(after / empty, 3),
            "concurrency": concurrency(backend, key=f"{prefix}concurrency"),
        }
    finally:
        if created:
            with connection.schema_editor() as editor:
                editor.delete_model(LimitCounter)
        else:
            LimitCounter.objects.filter(key__contains=prefix).delete()


def main() -> None:
    started = time.perf_counter()
    result = {"benchmark": "limits", "redis": bench_redis(), "database": bench_database()}
    result["seconds"] = round(time.perf_counter() - started, 1)
    connections.close_all()
    if _temporary_sqlite is not None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{_temporary_sqlite}{suffix}").unlink(missing_ok=True)
        _temporary_sqlite.parent.rmdir()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

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

4. The whole usage path of one copilot call through the usage service (policy read, atomic
   reservation, settle, usage record and roll-ups: `services.limits_reserve`,
   `limits_settle`, `usage_record_create`) on SQLite with 1,000,000 usage records (and their
   daily roll-ups) against an empty database, alternating; and 50 threads making 500 calls
   through the service against an allowance of 100 (admitted must equal allowed; every
   refusal also records its strike). Counters in Redis when it answers, else in the database.

Environment: `BENCH_REDIS_URL` (default `redis://127.0.0.1:6379/15`; the empty baseline uses
the database number below it; the bench writes under its own key prefix in both and deletes
it afterwards). The database part uses two temporary SQLite files, deleted afterwards; the
database backend's behaviour on PostgreSQL is proven by tests/usage. `BENCH_USAGE_RECORDS`
sets the history of part 4 (default 1,000,000). Runs in about a minute and a half.
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


SERVICE_HISTORY = int(os.environ.get("BENCH_USAGE_RECORDS", "1000000"))
SERVICE_SAMPLES = 600
SERVICE_THREADS = 50
SERVICE_ATTEMPTS = 500
SERVICE_ALLOWED = 100


def _use_database(path: Path) -> None:
    """Point the default connection at another SQLite file (closed, so it reopens there)."""
    connections["default"].close()
    settings.DATABASES["default"]["NAME"] = str(path)


BENCH_LIMITS = {
    "user_requests_per_minute": 10**9, "user_requests_per_hour": 10**9, "user_requests_per_day": 10**9,
    "user_tokens_per_day": 10**15, "tenant_tokens_per_day": 10**15,
}


def _service_member(tenant, email: str):
    from copilot_admin.access.models import SecurityRole
    from copilot_admin.directory.services import membership_create

    role = SecurityRole.objects.for_tenant(tenant).get(name="Technician")
    return membership_create(actor=None, tenant=tenant, email=email, user_type="internal", role=role,
                             password="bench-password-not-used", send_invite=False)


def _service_world(path: Path):
    """A migrated database with one tenant, one user and limits that never bind; the membership."""
    from django.core.management import call_command

    from copilot_admin.platform.services import tenant_create
    from copilot_admin.regions.models import DataZone
    from copilot_admin.usage.services import platform_policy_ensure
    from tenants.models import Plan

    _use_database(path)
    call_command("migrate", verbosity=0, interactive=False)
    policy = platform_policy_ensure()
    for name, value in BENCH_LIMITS.items():
        setattr(policy, name, value)
        setattr(policy, f"max_{name}", value)
    policy.save()
    tenant = tenant_create(actor=None, name="Bench MSP", slug="bench", plan=Plan.ULTIMATE,
                           zone=DataZone.objects.get(code="us"))
    return _service_member(tenant, f"tech-{path.stem}@bench.test")


def _fill_usage_history(membership) -> float:
    """1,000,000 usage records of the last months and a year of daily roll-ups, inserted with
    the raw SQLite driver (the ORM would take minutes for this many rows)."""
    from django.db import connection, transaction

    from copilot_admin.usage.models import DailyUsage, UsageRecord

    started = time.perf_counter()
    tenant = membership.tenant
    now = datetime.now(tz=UTC)
    table = UsageRecord._meta.db_table
    columns = ("tenant_id", "user_id", "membership_id", "feature", "zone", "deployment", "attempts", "prompt_tokens",
               "completion_tokens", "latency_ms", "outcome", "error_code", "request_id", "upstream_request_id",
               "template_version", "created_at")
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    rows = (
        (tenant.pk, membership.user_id, membership.pk, "summarize", "us", "bench", 1, 500, 200, 900, "ok", "",
         f"history-{index}", "", "", (now - timedelta(seconds=index * 2 + 86_400)).isoformat(" "))
        for index in range(SERVICE_HISTORY)
    )
    with transaction.atomic():
        connection.ensure_connection()
        connection.connection.executemany(sql, rows)
    days = [now.date() - timedelta(days=day) for day in range(1, 366)]
    DailyUsage.objects.for_tenant(tenant).bulk_create([
        DailyUsage(tenant=tenant, membership=membership, feature=feature, day=day, requests=900, prompt_tokens=450_000,
                   completion_tokens=180_000)
        for day in days for feature in ("summarize", "time-entry", "prioritize")
    ])
    assert UsageRecord.objects.for_tenant(tenant).count() >= SERVICE_HISTORY
    return round(time.perf_counter() - started, 2)


def _service_call(membership, index: int) -> float:
    from copilot_admin.usage import services as usage

    started = time.perf_counter()
    reservation = usage.limits_reserve(membership=membership, feature="summarize", estimated_tokens=800)
    usage.limits_settle(reservation=reservation, sent=True, prompt_tokens=500, completion_tokens=200)
    usage.usage_record_create(membership=membership, feature="summarize", zone="us", outcome="ok",
                              request_id=f"bench-{uuid.uuid4().hex}", prompt_tokens=500, completion_tokens=200)
    return time.perf_counter() - started


def _service_concurrency(tenant) -> dict:
    from copilot_admin.usage import services as usage
    from copilot_admin.usage.services import platform_policy_ensure

    policy = platform_policy_ensure()
    policy.user_requests_per_day = SERVICE_ALLOWED
    policy.save()
    membership = _service_member(tenant, "parallel@bench.test")  # counters of its own
    barrier = threading.Barrier(SERVICE_THREADS)
    admitted, errors = [], []

    def worker() -> None:
        try:
            barrier.wait()
            mine = 0
            for _ in range(SERVICE_ATTEMPTS // SERVICE_THREADS):
                try:
                    usage.limits_reserve(membership=membership, feature="prioritize", estimated_tokens=0)
                    mine += 1
                except usage.RateLimitExceeded:
                    pass
            admitted.append(mine)
        except Exception as exc:  # noqa: BLE001 - reported in the output
            errors.append(repr(exc))
        finally:
            connections.close_all()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(SERVICE_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "threads": SERVICE_THREADS,
        "attempts": SERVICE_ATTEMPTS,
        "allowed": SERVICE_ALLOWED,
        "admitted": sum(admitted),
        "exact": sum(admitted) == SERVICE_ALLOWED and not errors,
        "errors": errors[:3],
        "seconds": round(time.perf_counter() - started, 2),
    }


def bench_service() -> dict:
    """Part 4: the usage service's whole per-call path, empty against 1,000,000 usage records."""
    import redis as redis_client

    try:
        redis_client.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        settings.REDIS_URL = REDIS_URL
    except Exception:  # noqa: BLE001 - the database counters then
        settings.REDIS_URL = ""
    prefix = f"bench-service:{uuid.uuid4().hex}:"
    settings.USAGE_LIMITS_KEY_PREFIX = prefix
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # warnings: not on stdout
    paths = {name: SQLITE_DIRECTORY / f"service-{name}.sqlite3" for name in ("empty", "history")}
    try:
        members = {name: _service_world(path) for name, path in paths.items()}
        _use_database(paths["history"])
        fill_seconds = _fill_usage_history(members["history"])
        timings = {"empty": [], "history": []}
        for name, path in paths.items():  # warm up each
            _use_database(path)
            for index in range(30):
                _service_call(members[name], index)
        rounds = 10
        for _ in range(rounds):
            for name, path in paths.items():
                _use_database(path)
                timings[name] += [_service_call(members[name], i) for i in range(SERVICE_SAMPLES // rounds)]
        empty = round(statistics.median(timings["empty"]) * 1e6, 1)
        history = round(statistics.median(timings["history"]) * 1e6, 1)
        _use_database(paths["history"])
        concurrency_result = _service_concurrency(members["history"].tenant)
        return {
            "engine": "sqlite",
            "counters": "redis" if settings.REDIS_URL else "database",
            "history_usage_records": SERVICE_HISTORY,
            "history_fill_seconds": fill_seconds,
            "median_call_us_empty": empty,
            "median_call_us_after_history": history,
            "ratio_after_to_empty": round(history / empty, 3),
            "concurrency": concurrency_result,
        }
    finally:
        connections["default"].close()
        if settings.REDIS_URL:
            client = RedisCounterBackend(url=settings.REDIS_URL, key_prefix=prefix)
            delete_redis_prefix(client, prefix)
            client.client.close()


def main() -> None:
    started = time.perf_counter()
    result = {"benchmark": "limits", "redis": bench_redis(), "database": bench_database(), "service": bench_service()}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    try:
        main()
    finally:
        connections.close_all()
        shutil.rmtree(SQLITE_DIRECTORY, ignore_errors=True)


"""Benchmark of the anomaly review (`usage.anomalies.anomalies_review`); prints one JSON object.

Two SQLite databases of one tenant with `BENCH_ANOMALY_MEMBERS` technicians (default 40):

- **small**: 4 weeks of hourly roll-ups (every hour, every member) and no usage records;
- **large**: 12 weeks of hourly roll-ups (the most the baseline reads and the roll-ups keep) and
  `BENCH_ANOMALY_RECORDS` usage records (default 300,000).

In both, every member is busy in the judged hour (so every member is scored against its own
and its peers' baselines) and two of them are far outside. After one warm-up run (which opens
their cases), the review is timed in alternating rounds on the two databases, so load on the
machine hits both alike; the query count of one run is recorded for each. The ratio (large /
small) of the median times should stay near 1 and the query counts equal: the review reads
the judged hour and the same hour of the baseline weeks, not the history. Runs in well under
a minute.
"""

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIRECTORY = Path(tempfile.mkdtemp(prefix="bench-anomaly-"))
os.environ["DATABASE_URL"] = f"sqlite:///{DIRECTORY / 'small.sqlite3'}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.pop("REDIS_URL", None)
os.environ.pop("CELERY_BROKER_URL", None)

import django  # noqa: E402
from django.conf import settings  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

MEMBERS = int(os.environ.get("BENCH_ANOMALY_MEMBERS", "40"))
RECORDS = int(os.environ.get("BENCH_ANOMALY_RECORDS", "300000"))
ROUNDS = 15
NOW = datetime(2026, 11, 24, 11, 10, tzinfo=UTC)
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)


def _use_database(path: Path) -> None:
    connections["default"].close()
    settings.DATABASES["default"]["NAME"] = str(path)


def _world():
    """A migrated database with one tenant and MEMBERS technicians; their memberships."""
    from copilot_admin.access.models import SecurityRole
    from copilot_admin.directory.services import membership_create
    from copilot_admin.platform.services import tenant_create
    from copilot_admin.regions.models import DataZone
    from copilot_admin.usage.services import platform_policy_ensure
    from tenants.models import Plan

    call_command("migrate", verbosity=0, interactive=False)
    platform_policy_ensure()
    tenant = tenant_create(actor=None, name="Bench MSP", slug="bench", plan=Plan.ULTIMATE,
                           zone=DataZone.objects.get(code="us"))
    role = SecurityRole.objects.for_tenant(tenant).get(name="Technician")
    return [
        membership_create(actor=None, tenant=tenant, email=f"tech{i}@bench.test", user_type="internal", role=role,
                          password="bench-password-not-used", send_invite=False)
        for i in range(MEMBERS)
    ]


def _fill(*, weeks: int, records: int) -> dict:
    from copilot_admin.usage.models import HourlyUsage, UsageRecord
    from tenants.models import Membership

    members = list(Membership.objects.unscoped().select_related("tenant").order_by("pk"))
    tenant = members[0].tenant
    started = time.perf_counter()
    with transaction.atomic():
        for index, member in enumerate(members):
            rows = [
                HourlyUsage(tenant=tenant, membership=member, hour=HOUR - timedelta(hours=h),
                            requests=10 + (h + index) % 15, tokens=4000 + 100 * ((h + index) % 15))
                for h in range(1, 24 * 7 * weeks + 1)
            ]
            # The judged hour: everyone busy as usual, two members far outside it.
            rows.append(HourlyUsage(tenant=tenant, membership=member, hour=HOUR,
                                    requests=400 if index < 2 else 22, tokens=160_000 if index < 2 else 8800))
            HourlyUsage.objects.for_tenant(tenant).bulk_create(rows, batch_size=2000)
        if records:
            table = UsageRecord._meta.db_table
            columns = ("tenant_id", "user_id", "membership_id", "feature", "zone", "deployment", "attempts",
                       "prompt_tokens", "completion_tokens", "latency_ms", "outcome", "error_code", "request_id",
                       "upstream_request_id", "template_version", "created_at")
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            connection.ensure_connection()
            connection.connection.executemany(sql, (
                (tenant.pk, members[i % MEMBERS].user_id, members[i % MEMBERS].pk, "summarize", "us", "bench", 1,
                 500, 200, 900, "ok", "", f"history-{i}", "", "", (NOW - timedelta(seconds=20 * i)).isoformat(" "))
                for i in range(records)
            ))
    return {
        "hourly_rows": HourlyUsage.objects.unscoped().count(),
        "usage_records": UsageRecord.objects.unscoped().count(),
        "fill_seconds": round(time.perf_counter() - started, 1),
    }


def _review() -> tuple[float, int]:
    from copilot_admin.usage.anomalies import anomalies_review

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        anomalies_review(now=NOW)
        elapsed = time.perf_counter() - started
    return elapsed, len(captured)


def main() -> dict:
    small, large = DIRECTORY / "small.sqlite3", DIRECTORY / "large.sqlite3"
    try:
        _use_database(small)
        _world()
        connections["default"].close()
        shutil.copy(small, large)
        sizes = {}
        _use_database(small)
        sizes["small"] = {"weeks": 4, **_fill(weeks=4, records=0)}
        _use_database(large)
        sizes["large"] = {"weeks": 12, **_fill(weeks=12, records=RECORDS)}
        from copilot_admin.usage.models import AbuseCase

        opened = {}
        for name, path in (("small", small), ("large", large)):
            _use_database(path)
            _review()  # warm-up: opens the two cases
            opened[name] = AbuseCase.objects.unscoped().filter(kind="anomaly").count()
        times: dict[str, list[float]] = {"small": [], "large": []}
        queries: dict[str, set[int]] = {"small": set(), "large": set()}
        for _ in range(ROUNDS):
            for name, path in (("small", small), ("large", large)):
                _use_database(path)
                elapsed, count = _review()
                times[name].append(elapsed)
                queries[name].add(count)
        median = {name: statistics.median(values) for name, values in times.items()}
        ratio = median["large"] / median["small"]
        table = "\n".join([
            "| history | hourly rows | usage records | median review (ms) | queries | cases opened |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *(f"| {name} ({sizes[name]['weeks']} weeks) | {sizes[name]['hourly_rows']:,} | "
              f"{sizes[name]['usage_records']:,} | {median[name] * 1000:.1f} | "
              f"{'/'.join(map(str, sorted(queries[name])))} | {opened[name]} |" for name in ("small", "large")),
            f"\nratio large/small: {ratio:.2f} (flat: near 1); members scored per run: {MEMBERS}",
        ])
        return {
            "members": MEMBERS,
            "sizes": sizes,
            "median_ms": {name: round(value * 1000, 2) for name, value in median.items()},
            "ratio_large_to_small": round(ratio, 2),
            "queries_per_run": {name: sorted(values) for name, values in queries.items()},
            "cases_opened": opened,
            "table": table,
        }
    finally:
        connections["default"].close()
        shutil.rmtree(DIRECTORY, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))

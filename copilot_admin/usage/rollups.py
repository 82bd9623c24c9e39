"""Daily and hourly roll-ups of usage, updated on every call.

One `UPDATE ... SET n = n + x` (F() expressions: atomic in the database, no read-modify-write)
per roll-up row; the first call of a user, feature and day inserts the row instead, and an
insert that loses a race to a concurrent one falls back to the update. The cost per call is
two or three statements whatever the history; dashboards read these rows, not usage records.

On PostgreSQL both roll-ups are one precompiled statement instead (`_ROLLUP_SQL`): the daily
row's `INSERT ... ON CONFLICT DO UPDATE` in a data-modifying CTE, the hourly row's after it.
The same atomic arithmetic in the database and the same unique constraints, but one round
trip, no savepoint on a user's first call of the day, and no ORM compilation per call. The
rows it locks (until the caller's transaction ends) are the caller's own, never a row shared
by the tenant's calls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from copilot_admin.usage.models import DailyUsage, HourlyUsage
from tenants.models import Tenant


def _upsert(model, *, tenant: Tenant, keys: dict, increments: dict) -> None:
    increments = {field: value for field, value in increments.items() if value}
    if not increments:
        return
    rows = model.objects.for_tenant(tenant).filter(**keys)
    if rows.update(**{field: F(field) + value for field, value in increments.items()}):
        return
    try:
        with transaction.atomic():
            model.objects.for_tenant(tenant).create(tenant=tenant, **keys, **increments)
    except IntegrityError:
        rows.update(**{field: F(field) + value for field, value in increments.items()})


_ROLLUP_SQL = """
WITH daily AS (
    INSERT INTO usage_dailyusage AS d
        (tenant_id, membership_id, feature, day, requests, failed, filtered, rate_limited, prompt_tokens,
         completion_tokens)
    VALUES (%(tenant)s, %(membership)s, %(feature)s, %(day)s, %(requests)s, %(failed)s, %(filtered)s,
            %(rate_limited)s, %(prompt_tokens)s, %(completion_tokens)s)
    ON CONFLICT ON CONSTRAINT usage_daily_unique DO UPDATE SET
        requests = d.requests + EXCLUDED.requests,
        failed = d.failed + EXCLUDED.failed,
        filtered = d.filtered + EXCLUDED.filtered,
        rate_limited = d.rate_limited + EXCLUDED.rate_limited,
        prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens
    RETURNING 1
)
INSERT INTO usage_hourlyusage AS h (tenant_id, membership_id, hour, requests, tokens)
SELECT %(tenant)s, %(membership)s, %(hour)s, %(requests)s, %(tokens)s WHERE %(hourly)s
ON CONFLICT ON CONSTRAINT usage_hourly_unique DO UPDATE SET
    requests = h.requests + EXCLUDED.requests,
    tokens = h.tokens + EXCLUDED.tokens
"""


def usage_rollup_add(
    *,
    tenant: Tenant,
    membership_id: int,
    feature: str,
    at: datetime | None = None,
    requests: int = 0,
    failed: int = 0,
    filtered: int = 0,
    rate_limited: int = 0,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> None:
    """Add one call's numbers to its user's day (per feature) and hour (UTC)."""
    moment = (at or datetime.now(tz=UTC)).astimezone(UTC)
    if connection.vendor == "postgresql":
        if not (requests or failed or filtered or rate_limited or prompt_tokens or completion_tokens):
            return
        with connection.cursor() as cursor:
            cursor.execute(_ROLLUP_SQL, {
                "tenant": tenant.pk, "membership": membership_id, "feature": feature, "day": moment.date(),
                "requests": requests, "failed": failed, "filtered": filtered, "rate_limited": rate_limited,
                "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "hour": moment.replace(minute=0, second=0, microsecond=0),
                "tokens": prompt_tokens + completion_tokens, "hourly": bool(requests),
            })
        return
    _upsert(
        DailyUsage,
        tenant=tenant,
        keys={"membership_id": membership_id, "feature": feature, "day": moment.date()},
        increments={
            "requests": requests,
            "failed": failed,
            "filtered": filtered,
            "rate_limited": rate_limited,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        },
    )
    if requests:
        _upsert(
            HourlyUsage,
            tenant=tenant,
            keys={"membership_id": membership_id, "hour": moment.replace(minute=0, second=0, microsecond=0)},
            increments={"requests": requests, "tokens": prompt_tokens + completion_tokens},
        )


# The anomaly baselines read up to 12 weeks back (`anomaly_baseline_weeks` is at most 12).
HOURLY_KEPT = timedelta(weeks=12, days=1)


def hourly_usage_purge(*, now: datetime | None = None) -> int:
    """Delete hourly roll-ups older than the anomaly baselines and the pattern review need;
    returns how many went."""
    cutoff = (now or datetime.now(tz=UTC)) - HOURLY_KEPT
    deleted = 0
    for tenant in Tenant.objects.all().only("pk"):
        count, _ = HourlyUsage.objects.for_tenant(tenant).filter(hour__lt=cutoff).delete()
        deleted += count
    return deleted

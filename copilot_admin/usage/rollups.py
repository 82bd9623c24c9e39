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

A copilot call's usage record goes in the same statement (`usage_record_insert`): the record's
`INSERT` and both roll-ups, one round trip. The caller makes it the last statement of its
transaction: a user's roll-up rows are shared by all of that user's calls in flight (an
integration key's calls for one member can be hundreds), and a row lock taken by the last
statement is held only until the commit that follows it, never across another round trip.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from copilot_admin.core.inserts import RowInsert
from copilot_admin.usage.models import DailyUsage, HourlyUsage, UsageRecord
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


_ROLLUP_CTES = """
daily AS (
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
),
hourly AS (
    INSERT INTO usage_hourlyusage AS h (tenant_id, membership_id, hour, requests, tokens)
    SELECT %(tenant)s, %(membership)s, %(hour)s, %(requests)s, %(tokens)s WHERE %(hourly)s
    ON CONFLICT ON CONSTRAINT usage_hourly_unique DO UPDATE SET
        requests = h.requests + EXCLUDED.requests,
        tokens = h.tokens + EXCLUDED.tokens
    RETURNING 1
)"""
_ROLLUP_SQL = f"WITH {_ROLLUP_CTES}\nSELECT 1"

_RECORD_INSERT = RowInsert(UsageRecord, prefix="record_")


def _record_and_rollup_sql(connection) -> str:
    return f"WITH record AS ({_RECORD_INSERT.sql(connection)}),\n{_ROLLUP_CTES}\nSELECT * FROM record"


def _rollup_params(*, tenant_id: int, membership_id: int, feature: str, moment: datetime, requests: int,
                   failed: int, filtered: int, rate_limited: int, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "tenant": tenant_id, "membership": membership_id, "feature": feature, "day": moment.date(),
        "requests": requests, "failed": failed, "filtered": filtered, "rate_limited": rate_limited,
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "hour": moment.replace(minute=0, second=0, microsecond=0),
        "tokens": prompt_tokens + completion_tokens, "hourly": bool(requests),
    }


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
            cursor.execute(_ROLLUP_SQL, _rollup_params(
                tenant_id=tenant.pk, membership_id=membership_id, feature=feature, moment=moment, requests=requests,
                failed=failed, filtered=filtered, rate_limited=rate_limited, prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            ))
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


_NUMBERS = ("requests", "failed", "filtered", "rate_limited", "prompt_tokens", "completion_tokens")


def usage_record_insert(record: UsageRecord, **given: int) -> UsageRecord:
    """Insert `record` (unsaved) and add the call's numbers (`usage_rollup_add`'s keywords,
    0 when not given) to its user's roll-ups: on PostgreSQL one statement (see the module
    docstring), elsewhere the same in turn. Returns the record, saved."""
    unknown = set(given) - set(_NUMBERS)
    if unknown:
        raise TypeError(f"usage_record_insert() got unexpected numbers: {', '.join(sorted(unknown))}")
    numbers = {name: given.get(name, 0) for name in _NUMBERS}
    if connection.vendor != "postgresql" or not any(numbers.values()):
        _RECORD_INSERT.insert(record)
        usage_rollup_add(tenant=record.tenant, membership_id=record.membership_id, feature=record.feature,
                         at=record.created_at, **numbers)
        return record
    params = _RECORD_INSERT.params(record, connection)
    params.update(_rollup_params(tenant_id=record.tenant_id, membership_id=record.membership_id,
                                 feature=record.feature, moment=record.created_at.astimezone(UTC), **numbers))
    with connection.cursor() as cursor:
        cursor.execute(_record_and_rollup_sql(connection), params)
        pk = cursor.fetchone()[0]
    return _RECORD_INSERT.saved(record, pk, using=connection.alias)


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

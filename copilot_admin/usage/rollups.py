"""Daily and hourly roll-ups of usage, updated with every usage record (`usage_record_add`).

On PostgreSQL the record and both roll-ups are parts of one statement (`core.inserts.OneStatement`):
the record's `INSERT` and, as data-modifying CTEs, the daily row's and the hourly row's
`INSERT ... ON CONFLICT DO UPDATE` (atomic arithmetic in the database, the tables' unique
constraints, no savepoint on a user's first call of the day, no ORM compilation per call).
The rows it locks are the caller's own, never a row shared by the tenant's calls; but a user's
roll-up rows are shared by all of that user's calls in flight (an integration key's calls for
one member can be hundreds), so the copilot call writes its whole bookkeeping (the audit entry
too) as that one statement, outside any transaction: the lock is held while PostgreSQL runs
and commits it, never across a round trip to the web process.

Elsewhere (SQLite) the record is inserted, then one `UPDATE ... SET n = n + x` (F()
expressions) per roll-up row; the first call of a user, feature and day inserts the row
instead, and an insert that loses a race to a concurrent one falls back to the update.
Dashboards read these rows, not usage records.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F

from copilot_admin.core.inserts import OneStatement, RowInsert
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
_RECORD_INSERT = RowInsert(UsageRecord, prefix="record_")


def _rollup_params(*, tenant_id: int, membership_id: int, feature: str, moment: datetime, requests: int,
                   failed: int, filtered: int, rate_limited: int, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "tenant": tenant_id, "membership": membership_id, "feature": feature, "day": moment.date(),
        "requests": requests, "failed": failed, "filtered": filtered, "rate_limited": rate_limited,
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "hour": moment.replace(minute=0, second=0, microsecond=0),
        "tokens": prompt_tokens + completion_tokens, "hourly": bool(requests),
    }


def _rollups_upsert(record: UsageRecord, numbers: dict[str, int]) -> None:
    """Add the call's numbers to its user's day (per feature) and hour (UTC), statement by
    statement (the databases other than PostgreSQL)."""
    moment = record.created_at.astimezone(UTC)
    _upsert(
        DailyUsage,
        tenant=record.tenant,
        keys={"membership_id": record.membership_id, "feature": record.feature, "day": moment.date()},
        increments=numbers,
    )
    if numbers["requests"]:
        _upsert(
            HourlyUsage,
            tenant=record.tenant,
            keys={"membership_id": record.membership_id, "hour": moment.replace(minute=0, second=0, microsecond=0)},
            increments={"requests": numbers["requests"],
                        "tokens": numbers["prompt_tokens"] + numbers["completion_tokens"]},
        )


_NUMBERS = ("requests", "failed", "filtered", "rate_limited", "prompt_tokens", "completion_tokens")


def usage_record_add(statement: OneStatement, record: UsageRecord, **given: int) -> None:
    """Add `record` (unsaved) and the call's numbers (`_NUMBERS`, 0 when not given) for its
    user's day (per feature) and hour (UTC) to `statement`: on PostgreSQL the record's insert
    and both roll-ups' upserts are parts of that one statement (see the module docstring)."""
    unknown = set(given) - set(_NUMBERS)
    if unknown:
        raise TypeError(f"usage_record_add() got unexpected numbers: {', '.join(sorted(unknown))}")
    numbers = {name: given.get(name, 0) for name in _NUMBERS}
    statement.insert(_RECORD_INSERT, record)
    if any(numbers.values()):
        params = _rollup_params(tenant_id=record.tenant_id, membership_id=record.membership_id,
                                feature=record.feature, moment=record.created_at.astimezone(UTC), **numbers)
        statement.add(_ROLLUP_CTES, params, elsewhere=lambda: _rollups_upsert(record, numbers))


def usage_record_insert(record: UsageRecord, **given: int) -> UsageRecord:
    """Insert `record` and add its numbers to the roll-ups (`usage_record_add`), on its own
    statement; returns the record, saved."""
    statement = OneStatement()
    usage_record_add(statement, record, **given)
    statement.execute()
    return record


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

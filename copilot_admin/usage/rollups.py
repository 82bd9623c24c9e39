"""Daily and hourly roll-ups of usage, updated on every call.

One `UPDATE ... SET n = n + x` (F() expressions: atomic in the database, no read-modify-write)
per roll-up row; the first call of a user, feature and day inserts the row instead, and an
insert that loses a race to a concurrent one falls back to the update. The cost per call is
two or three statements whatever the history; dashboards read these rows, not usage records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
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

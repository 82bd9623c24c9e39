"""Monthly partitions of the usage records (PostgreSQL; docs/SCALING.md, section 2).

`usage_usagerecord` is a table partitioned by month of `created_at` (migration 0011): each
month's rows live in `usage_usagerecord_YYYY_MM`, a `usage_usagerecord_default` partition
catches anything outside them, and the periodic maintenance task keeps the next months'
partitions created ahead (`usage_partitions_ensure`), so the default one stays empty. What
this gives: the current month's indexes stay small and in memory, vacuum works per month,
and retention can drop a whole month (documented, not automated: nothing deletes records).
On SQLite (development) the table is a plain table and this module does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import DatabaseError, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

TABLE = "usage_usagerecord"
MONTHS_AHEAD = 3


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def partition_name(month: dt.date) -> str:
    return f"{TABLE}_{month:%Y_%m}"


def partition_create_sql(month: dt.date) -> str:
    """The DDL of one month's partition (bounds in UTC, like every stored time)."""
    return (
        f'CREATE TABLE IF NOT EXISTS "{partition_name(month)}" PARTITION OF "{TABLE}" '
        f"FOR VALUES FROM ('{month:%Y-%m-%d} 00:00:00+00') TO ('{next_month(month):%Y-%m-%d} 00:00:00+00')"
    )


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [TABLE])
        return cursor.fetchone() is not None


def usage_partitions_ensure(*, today: dt.date | None = None, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of this month and the next `months_ahead` months that are missing;
    returns their names. Idempotent; a failure is logged (rows still land in the default
    partition), never raised into the maintenance task."""
    if not is_partitioned():
        return []
    month = month_start(today or timezone.now().date())
    created = []
    for _ in range(months_ahead + 1):
        name = partition_name(month)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass(%s)", [name])
                if cursor.fetchone()[0] is None:
                    cursor.execute(partition_create_sql(month))
                    created.append(name)
        except DatabaseError:
            logger.exception("Creating the usage record partition %s failed.", name)
        month = next_month(month)
    return created

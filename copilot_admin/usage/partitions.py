"""Monthly partitions of the usage records (PostgreSQL; docs/SCALING.md, section 2).

`usage_usagerecord` is a table partitioned by month of `created_at` (migration 0011): each
month's rows live in `usage_usagerecord_YYYY_MM`, a `usage_usagerecord_default` partition
catches anything outside them, and the periodic maintenance task keeps the next months'
partitions created ahead (`usage_partitions_ensure`), so the default one stays empty. What
this gives: the current month's indexes stay small and in memory, vacuum works per month,
and retention can drop a whole month (documented, not automated: nothing deletes records).
On SQLite (development) the table is a plain table and this module does nothing. The
monthly machinery is shared with the audit entries: `copilot_admin.core.partitions`.
"""

from __future__ import annotations

import datetime as dt

from copilot_admin.core import partitions as core
from copilot_admin.core.partitions import month_start, next_month

TABLE = "usage_usagerecord"
MONTHS_AHEAD = core.MONTHS_AHEAD

__all__ = ["MONTHS_AHEAD", "TABLE", "is_partitioned", "month_start", "next_month", "partition_name",
           "usage_partitions_ensure"]


def partition_name(month: dt.date) -> str:
    return core.partition_name(TABLE, month)


def is_partitioned() -> bool:
    return core.is_partitioned(TABLE)


def usage_partitions_ensure(*, today: dt.date | None = None, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of this month and the next `months_ahead` months that are missing;
    returns their names (`core.partitions.partitions_ensure`)."""
    return core.partitions_ensure(TABLE, today=today, months_ahead=months_ahead)

"""Monthly partitions of the audit entries (PostgreSQL; migration 0007, docs/SCALING.md section 2).

`audit_auditentry` is partitioned by month of `created_at`. The hourly maintenance task
(`audit.tasks.audit_maintenance`):
- creates this month's and the next months' partitions ahead (`audit_partitions_ensure`), each
  with the chain's unique numbering (`(tenant_id, seq)`, and `seq` of the platform chain): a
  partitioned table cannot hold those as one constraint (its unique constraints must contain
  `created_at`), so each month has them, and the append-only trigger keeps them unique across
  months (a seq is only ever set above the chain head, under its lock: see migration 0007);
- drops the past months that hold no entry any more (`audit_partitions_drop_empty`). Retention
  is per chain (`audit_purge_expired` deletes each chain's expired prefix and keeps its
  checkpoint), never by dropping a month: a month goes only once every chain has purged past it.
  The drop is recorded in the platform chain.

On other databases the table is a plain table and this module does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from copilot_admin.audit.services import audit_event_record
from copilot_admin.core import partitions as core

logger = logging.getLogger(__name__)

TABLE = "audit_auditentry"
MONTHS_AHEAD = core.MONTHS_AHEAD


class PartitionNotEmpty(Exception):
    """A month about to be dropped turned out to hold entries: nothing is dropped."""


def partition_name(month: dt.date) -> str:
    return core.partition_name(TABLE, month)


def is_partitioned() -> bool:
    return core.is_partitioned(TABLE)


def chain_unique_indexes_create(partition: str) -> None:
    """The chain's unique numbering on one partition (named as migration 0007 names them)."""
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS "{partition}_chain_seq" ON "{partition}" (tenant_id, seq)')
        cursor.execute(
            f'CREATE UNIQUE INDEX IF NOT EXISTS "{partition}_platform_seq" ON "{partition}" (seq) '
            "WHERE tenant_id IS NULL"
        )


def audit_partitions_ensure(*, today: dt.date | None = None, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of this month and the next `months_ahead` months that are missing,
    with their unique chain indexes; returns their names."""
    return core.partitions_ensure(TABLE, today=today, months_ahead=months_ahead, after_create=chain_unique_indexes_create)


def _drop_if_empty(name: str) -> None:
    """Detach the partition, check it is empty while holding it, drop it; all or nothing."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{settings.AUDIT_PARTITION_LOCK_TIMEOUT_MS}ms"])
        cursor.execute(f'ALTER TABLE "{TABLE}" DETACH PARTITION "{name}"')
        cursor.execute(f'SELECT 1 FROM "{name}" LIMIT 1')  # under the detach's exclusive lock
        if cursor.fetchone() is not None:
            raise PartitionNotEmpty(name)
        cursor.execute(f'DROP TABLE "{name}"')


def audit_partitions_drop_empty(*, today: dt.date | None = None) -> list[str]:
    """Drop the months before the current one that hold no entry (every chain has purged past
    them); returns their names. A month still holding entries, or one whose lock is not granted
    within AUDIT_PARTITION_LOCK_TIMEOUT_MS (calls are never held up longer), is kept for the
    next run. Each drop is recorded in the platform chain."""
    if not is_partitioned():
        return []
    current = core.month_start(today or timezone.now().date())
    dropped = []
    for partition in core.partitions_of(TABLE):
        if partition.month is None or partition.month >= current:
            continue
        if not core.partition_is_empty(partition.name):
            continue
        try:
            _drop_if_empty(partition.name)
        except (DatabaseError, PartitionNotEmpty):
            logger.warning("Audit partition %s was not dropped (busy or not empty); next run retries.", partition.name)
            continue
        audit_event_record(
            tenant=None, actor=None, action="audit.partition_drop", object_type="audit", object_id=partition.name,
            object_repr=f"Audit entries of {partition.month:%Y-%m} (empty)",
            metadata={"partition": partition.name, "month": f"{partition.month:%Y-%m}"},
        )
        dropped.append(partition.name)
    return dropped


def audit_default_partition_rows() -> int:
    """Entries in the default partition (outside every month): 0 unless the months ahead were
    not created in time. Reported by the maintenance task (an alert when not 0)."""
    if not is_partitioned():
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{core.default_partition_name(TABLE)}"')
        return cursor.fetchone()[0]

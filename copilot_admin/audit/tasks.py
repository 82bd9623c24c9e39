"""Audit tasks: sealing (every few seconds), the retention purge (daily) and the partitions'
maintenance (hourly), all scheduled by Celery beat."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from copilot_admin.audit import partitions
from copilot_admin.audit.services import audit_purge_all_expired, audit_seal


@shared_task(acks_late=True, ignore_result=True)
def audit_seal_pending() -> int:
    """Seal every chain's committed, unsealed entries of the last AUDIT_SEAL_WINDOW_HOURS (the
    recent partitions; `audit_maintenance` seals older stragglers). Safe to run concurrently,
    twice, or after a crash: each batch commits with its chain head."""
    return audit_seal(since=timezone.now() - timedelta(hours=settings.AUDIT_SEAL_WINDOW_HOURS))


@shared_task(acks_late=True)
def audit_maintenance() -> dict:
    """Hourly: seal any unsealed entry older than the periodic sealer's window, create the
    months ahead, and drop the past months the retention purge has emptied (PostgreSQL)."""
    return {
        "sealed": audit_seal(),
        "partitions_created": partitions.audit_partitions_ensure(),
        "partitions_dropped": partitions.audit_partitions_drop_empty(),
        "default_partition_rows": partitions.audit_default_partition_rows(),
    }


@shared_task(acks_late=True)
def audit_purge_expired() -> dict[str, int]:
    """Purge every chain's expired entries. Safe to run twice or to resume after a crash:
    each batch commits with its checkpoint."""
    return audit_purge_all_expired()

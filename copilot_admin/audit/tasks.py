"""Audit tasks: sealing (every few seconds) and the retention purge (daily), both scheduled by
Celery beat."""

from celery import shared_task

from copilot_admin.audit.services import audit_purge_all_expired, audit_seal


@shared_task(acks_late=True, ignore_result=True)
def audit_seal_pending() -> int:
    """Seal every chain's committed, unsealed entries. Safe to run concurrently, twice, or
    after a crash: each batch commits with its chain head."""
    return audit_seal()


@shared_task(acks_late=True)
def audit_purge_expired() -> dict[str, int]:
    """Purge every chain's expired entries. Safe to run twice or to resume after a crash:
    each batch commits with its checkpoint."""
    return audit_purge_all_expired()

"""Audit tasks: the periodic retention purge (scheduled daily by Celery beat)."""

from celery import shared_task

from copilot_admin.audit.services import audit_purge_all_expired


@shared_task(acks_late=True)
def audit_purge_expired() -> dict[str, int]:
    """Purge every chain's expired entries. Safe to run twice or to resume after a crash:
    each batch commits with its checkpoint."""
    return audit_purge_all_expired()

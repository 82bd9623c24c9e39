"""Compliance tasks: the daily e-mail of each tenant's signed checkpoints to its auditors
(Celery beat, when AUDIT_CHECKPOINT_EMAIL is on)."""

from celery import shared_task

from copilot_admin.compliance.checkpoint_mail import checkpoints_mail_all


@shared_task(acks_late=True)
def checkpoints_mail_daily() -> int:
    """E-mail yesterday's checkpoints to each tenant's auditors. Safe to run twice a day: a
    tenant's day is sent once."""
    return checkpoints_mail_all()

"""Usage tasks: each loads by id (or runs over all tenants) and calls one service.

`send_notification` is acknowledged late and requeued when its worker dies, retried with
exponential backoff while SMTP fails, and idempotent through its `Notification` row.
The periodic tasks are scheduled by Celery beat (`CELERY_BEAT_SCHEDULE` in settings).
"""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from copilot_admin.usage import abuse, alerts, anomalies, partitions, rollups, webhook_delivery
from copilot_admin.usage.counters import DatabaseCounterBackend, get_counter_backend


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OSError,),
    retry_backoff=settings.USAGE_EMAIL_RETRY_BACKOFF_SECONDS,
    retry_backoff_max=settings.USAGE_EMAIL_RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=settings.USAGE_EMAIL_MAX_RETRIES,
)
def send_notification(self, *, tenant_id: int, notification_id: int) -> str:
    """Send one notification e-mail, once."""
    return alerts.notification_deliver(
        tenant_id=tenant_id, notification_id=notification_id, final_attempt=self.request.retries >= self.max_retries
    )


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def deliver_webhook(self, *, tenant_id: int, delivery_id: int) -> str:
    """Deliver one webhook event, once; retried later (countdown) while the receiver fails.
    Run eagerly (no broker: development), a retry is left to the maintenance task."""
    result = webhook_delivery.webhook_deliver(tenant_id=tenant_id, delivery_id=delivery_id)
    if result.retry_in is not None and not self.request.is_eager:
        raise self.retry(countdown=result.retry_in, max_retries=None)
    return result.status


@shared_task(acks_late=True)
def review_usage_patterns() -> int:
    """Open review cases for sustained near-limit use (hourly)."""
    return len(abuse.usage_patterns_review())


@shared_task(acks_late=True)
def review_anomalies() -> int:
    """Open anomaly cases for the last whole hour's usage far outside each user's baseline (hourly)."""
    return len(anomalies.anomalies_review())


@shared_task(acks_late=True)
def send_warning_digests() -> int:
    """E-mail yesterday's limit warnings to the tenants that take the daily digest (daily, after midnight UTC)."""
    return len(alerts.warning_digest_send(day=(timezone.now() - timedelta(days=1)).date()))


@shared_task(acks_late=True)
def usage_maintenance() -> dict:
    """End lapsed suspensions, enqueue notifications and webhook deliveries whose task was lost, purge
    expired database counters and hourly roll-ups older than the anomaly baselines need, and keep
    the usage records' monthly partitions created ahead (PostgreSQL)."""
    result = {
        "suspensions_ended": abuse.suspensions_expire(),
        "notifications_enqueued": alerts.notifications_resend_pending(),
        "webhook_deliveries_enqueued": webhook_delivery.webhook_deliveries_resend_pending(),
        "counters_purged": 0,
        "hourly_rows_purged": rollups.hourly_usage_purge(),
        "partitions_created": partitions.usage_partitions_ensure(),
    }
    backend = get_counter_backend()
    if isinstance(backend, DatabaseCounterBackend):
        result["counters_purged"] = backend.purge_expired()
    return result

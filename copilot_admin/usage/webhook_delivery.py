"""Delivering a webhook's outbox row, once, and what repeated failure does.

`webhook_deliver` (called by the Celery task `deliver_webhook`, acknowledged late and
requeued when its worker dies) follows the e-mails' proof of exactly-once:

- the delivery row is locked from the check to the commit of its outcome, so a redelivered
  task waits for the first one or finds the row delivered, and never sends it again; a worker
  killed mid-request rolls its attempt back and the requeued task sends the same delivery
  (same `X-Copilot-Admin-Delivery` id) again, which a receiver that saw the first request
  drops by that id;
- each attempt is logged (`WebhookAttempt`: status, latency, error, the retry chosen);
- a 2xx answer delivers; a 5xx answer, a timeout or a connection error is retried after
  `retry_delay_seconds(n)` (exponential, capped) up to WEBHOOK_MAX_ATTEMPTS attempts; a 3xx
  (redirects are not followed) or 4xx answer, or a URL refused at send time, fails at once;
- WEBHOOK_DISABLE_AFTER_FAILURES deliveries in a row failing for good switch the webhook off
  (recorded in the audit log, the system acting) and e-mail the tenant's administrators;
  a delivered event resets the count. Test events count neither way.
- rows whose task was lost (broker down) are enqueued again by the maintenance task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from copilot_admin.audit.services import audit_change_record, audit_snapshot
from copilot_admin.usage import alerts, webhooks
from copilot_admin.usage.models import (
    WEBHOOK_TEST_EVENT,
    DeliveryStatus,
    NotificationKind,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from copilot_admin.usage.webhook_http import (
    WebhookTransportError,
    WebhookUrlRefused,
    webhook_post,
    webhook_url_check,
)
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# A pending delivery whose task never ran is enqueued again after this long; one waiting for a
# retry when its retry is this much overdue.
ENQUEUE_LOST_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class DeliveryResult:
    status: str
    retry_in: int | None = None  # seconds until the next attempt; None: no retry


def retry_delay_seconds(attempt: int) -> int:
    """How long to wait after failed attempt number `attempt` (1-based): the backoff doubled
    per attempt, capped."""
    base = max(1, settings.WEBHOOK_RETRY_BACKOFF_SECONDS)
    return min(base * 2 ** (attempt - 1), settings.WEBHOOK_RETRY_BACKOFF_MAX_SECONDS)


def _attempt(delivery: WebhookDelivery, webhook: Webhook) -> tuple[int | None, int, str, bool]:
    """One request: (status, latency ms, error, retryable)."""
    try:
        secret = webhooks.secret_decrypt(webhook.secret_ciphertext)
    except InvalidToken:
        return None, 0, "the signing secret cannot be read (WEBHOOK_SECRETS_KEY changed)", False
    body = webhooks.payload_render(delivery, fmt=webhook.format)
    headers = webhooks.request_headers(delivery, secret=secret, body=body)
    try:
        target = webhook_url_check(webhook.url)  # checked again now; the request goes to this address
        status, latency = webhook_post(target, body=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
    except WebhookUrlRefused as exc:
        return None, 0, f"refused: {exc.reason}"[:200], False
    except WebhookTransportError as exc:
        return None, 0, str(exc)[:200], True
    if 200 <= status < 300:
        return status, latency, "", False
    if status >= 500:
        return status, latency, f"HTTP {status}", True
    if 300 <= status < 400:
        return status, latency, f"HTTP {status} (redirects are not followed)", False
    return status, latency, f"HTTP {status}", False


def webhook_deliver(*, tenant_id: int, delivery_id: int) -> DeliveryResult:
    """Send one delivery unless it is settled already; answers its status and, while it is
    to be retried, the delay. See the module docstring for the guarantees."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return DeliveryResult("missing")
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.for_tenant(tenant)
            .select_for_update(of=("self",))
            .select_related("webhook")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return DeliveryResult("missing")
        if delivery.status != DeliveryStatus.PENDING:
            return DeliveryResult(delivery.status)
        webhook = delivery.webhook
        if not webhook.active and delivery.event != WEBHOOK_TEST_EVENT:
            delivery.status = DeliveryStatus.CANCELLED
            delivery.save(update_fields=["status"])
            return DeliveryResult(delivery.status)
        status, latency, error, retryable = _attempt(delivery, webhook)
        now = timezone.now()
        delivery.attempts += 1
        retry_in = None
        if status is not None and 200 <= status < 300:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
        elif retryable and delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
            retry_in = retry_delay_seconds(delivery.attempts)
        else:
            delivery.status = DeliveryStatus.FAILED
        delivery.response_status, delivery.latency_ms, delivery.last_error = status, latency, error
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + timedelta(seconds=retry_in) if retry_in is not None else None
        delivery.save(
            update_fields=[
                "status",
                "attempts",
                "response_status",
                "latency_ms",
                "last_error",
                "last_attempt_at",
                "next_attempt_at",
                "delivered_at",
            ]
        )
        WebhookAttempt.objects.for_tenant(tenant).create(
            tenant=tenant,
            delivery=delivery,
            number=delivery.attempts,
            response_status=status,
            latency_ms=latency,
            error=error,
            retry_in_seconds=retry_in,
            attempted_at=now,
        )
        if error:
            logger.warning(
                "Webhook delivery %s (tenant %s) attempt %s: %s", delivery.pk, tenant.pk, delivery.attempts, error
            )
        if delivery.event != WEBHOOK_TEST_EVENT and delivery.status != DeliveryStatus.PENDING:
            _count_outcome(
                webhook_id=webhook.pk,
                tenant=tenant,
                delivered=delivery.status == DeliveryStatus.DELIVERED,
                delivery=delivery,
            )
    return DeliveryResult(delivery.status, retry_in)


def _count_outcome(*, webhook_id: int, tenant: Tenant, delivered: bool, delivery: WebhookDelivery) -> None:
    """Reset or advance the webhook's run of failed deliveries; at the limit, switch it off
    and e-mail the administrators (after commit)."""
    hooks = Webhook.objects.for_tenant(tenant)
    if delivered:
        hooks.filter(pk=webhook_id, consecutive_failures__gt=0).update(consecutive_failures=0)
        return
    webhook = hooks.select_for_update().get(pk=webhook_id)
    webhook.consecutive_failures += 1
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    if not webhook.active or webhook.consecutive_failures < limit:
        webhook.save(update_fields=["consecutive_failures"])
        return
    before = audit_snapshot(webhook)
    webhook.active = False
    webhook.disabled_reason = (
        f"Switched off after {webhook.consecutive_failures} failed deliveries in a row "
        f"(last: {delivery.last_error or 'failed'})"
    )[:255]
    webhook.save(update_fields=["active", "disabled_reason", "consecutive_failures", "updated_at"])
    audit_change_record(actor=None, tenant=tenant, instance=webhook, before=before)  # the system switches it off
    alerts.notify(
        tenant=tenant,
        kind=NotificationKind.WEBHOOK_DISABLED,
        recipients=[admin.user for admin in alerts.tenant_administrators(tenant)],
        subject=f"Webhook switched off ({tenant.name})",
        reason=f"{webhook.url}: {webhook.disabled_reason}",
        cause=f"webhook-disabled:{webhook.pk}:{delivery.pk}",
    )


def webhook_deliveries_resend_pending(*, now=None) -> int:
    """Enqueue again the pending deliveries whose task was lost; returns how many."""
    now = now or timezone.now()
    lost = Q(attempts=0, created_at__lt=now - ENQUEUE_LOST_AFTER) | Q(
        attempts__gt=0, next_attempt_at__lt=now - ENQUEUE_LOST_AFTER
    )
    count = 0
    for tenant in Tenant.objects.all().only("pk"):
        ids = list(
            WebhookDelivery.objects.for_tenant(tenant)
            .filter(lost, status=DeliveryStatus.PENDING)
            .values_list("pk", flat=True)[:500]
        )
        if ids:
            webhooks.deliveries_enqueue(tenant_id=tenant.pk, ids=ids)
            count += len(ids)
    return count

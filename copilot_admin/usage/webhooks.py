"""Webhooks beside e-mail: the events, their payloads, the signature, and the outbox.

The usage rules call `webhook_limit_warning`, `webhook_access_changed` and
`webhook_case_opened` inside the transaction of the event. `webhook_event_emit` writes one
`WebhookDelivery` row per active webhook subscribed to the event, unique per webhook and
cause (`event_key`), so an event seen twice is delivered once; after commit each row's id is
handed to the Celery task `deliver_webhook` (see `webhook_delivery`).

Signature (the README's verification recipe): with `t` the value of `X-Copilot-Admin-Timestamp`
(Unix seconds) and `body` the raw request body, `X-Copilot-Admin-Signature` is
`sha256=` + hex(HMAC-SHA256(secret, t + "." + body)). A receiver recomputes it, compares in
constant time, and refuses a timestamp older than its replay window (WEBHOOK_REPLAY_WINDOW_SECONDS,
five minutes by default) and a delivery id (`X-Copilot-Admin-Delivery`) it has seen already.

Payloads carry limit names, numbers, dates, the system-written case summary and the user
concerned (e-mail): never ticket content.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterable

from cryptography.fernet import Fernet
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from copilot_admin.usage.models import (
    WEBHOOK_TEST_EVENT,
    AbuseCase,
    LimitName,
    LimitWarning,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookFormat,
)
from tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Copilot-Admin-Signature"
EVENT_HEADER = "X-Copilot-Admin-Event"
TIMESTAMP_HEADER = "X-Copilot-Admin-Timestamp"
DELIVERY_HEADER = "X-Copilot-Admin-Delivery"
USER_AGENT = "copilot-admin-webhooks/1"

# NotificationKind value of an access e-mail -> the webhook event beside it.
ACCESS_EVENTS = {
    "access_suspended": WebhookEvent.ACCESS_SUSPENDED,
    "access_terminated": WebhookEvent.ACCESS_TERMINATED,
    "access_reinstated": WebhookEvent.ACCESS_REINSTATED,
}


# -- the signing secret ---------------------------------------------------------------------


def _fernet() -> Fernet:
    material = settings.WEBHOOK_SECRETS_KEY or f"webhook-secrets:{settings.SECRET_KEY}"
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest()))


def secret_generate() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def secret_encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def secret_decrypt(ciphertext: str) -> str:
    """The webhook's secret; raises `InvalidToken` if the key changed since it was stored."""
    return _fernet().decrypt(ciphertext.encode()).decode()


def signature_compute(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_verify(
    *,
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float | None = None,
    tolerance_seconds: int | None = None,
) -> bool:
    """The receiver's check (the README's recipe, in Python): the signature matches the
    timestamp and raw body, and the timestamp is within the replay window."""
    tolerance = settings.WEBHOOK_REPLAY_WINDOW_SECONDS if tolerance_seconds is None else tolerance_seconds
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    expected = signature_compute(secret=secret, timestamp=timestamp, body=body)
    return hmac.compare_digest(expected, signature or "")


# -- payloads -------------------------------------------------------------------------------


def _title(event: str) -> str:
    if event == WEBHOOK_TEST_EVENT:
        return "Test event"
    return WebhookEvent(event).label


def payload_render(delivery: WebhookDelivery, *, fmt: str) -> bytes:
    """The request body of a delivery in the webhook's format: the plain JSON event, or a
    message that Microsoft Teams (Adaptive Card) or Slack incoming webhooks accept."""
    stored = delivery.payload
    summary = stored.get("summary", "")
    tenant_name = stored.get("tenant", {}).get("name", "")
    title = f"Copilot admin: {_title(delivery.event)} ({tenant_name})"
    if fmt == WebhookFormat.SLACK:
        document = {
            "text": f"{title}: {summary}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                {"type": "section", "text": {"type": "plain_text", "text": summary or title}},
            ],
        }
    elif fmt == WebhookFormat.TEAMS:
        facts = [{"title": str(key), "value": str(value)} for key, value in sorted(stored.get("data", {}).items())]
        document = {
            "type": "message",
            "summary": title,
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True},
                            {"type": "TextBlock", "text": summary, "wrap": True},
                            {"type": "FactSet", "facts": facts},
                        ],
                    },
                }
            ],
        }
    else:
        document = {"id": delivery.pk, **stored}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def request_headers(delivery: WebhookDelivery, *, secret: str, body: bytes, timestamp: str | None = None) -> dict:
    timestamp = timestamp or str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.pk),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature_compute(secret=secret, timestamp=timestamp, body=body),
    }


def _envelope(*, tenant: Tenant, event: str, summary: str, data: dict, occurred_at=None) -> dict:
    return {
        "event": event,
        "occurred_at": (occurred_at or timezone.now()).isoformat(),
        "tenant": {"slug": tenant.slug, "name": tenant.name},
        "summary": summary[:500],
        "data": data,
    }


# -- the outbox -----------------------------------------------------------------------------


def _subscribed(tenant: Tenant, event: str) -> list[Webhook]:
    hooks = Webhook.objects.for_tenant(tenant).filter(active=True).only("pk", "events", "tenant_id")
    return [hook for hook in hooks if event in (hook.events or [])]


def deliveries_create(
    *, tenant: Tenant, hooks: Iterable[Webhook], event: str, key: str, payload: dict
) -> list[WebhookDelivery]:
    """One outbox row per webhook for the event `key`, enqueued after commit; a row that
    exists already (the same event seen again) is skipped."""
    created = []
    for hook in hooks:
        try:
            with transaction.atomic():
                created.append(
                    WebhookDelivery.objects.for_tenant(tenant).create(
                        tenant=tenant,
                        webhook=hook,
                        event=event,
                        event_key=key[:120],
                        payload=payload,
                    )
                )
        except IntegrityError:
            continue  # this webhook has this event already
    if created:
        ids, tenant_id = [delivery.pk for delivery in created], tenant.pk
        transaction.on_commit(lambda: deliveries_enqueue(tenant_id=tenant_id, ids=ids), robust=True)
    return created


def deliveries_enqueue(*, tenant_id: int, ids: Iterable[int], countdown: int | None = None) -> None:
    """Hand each delivery to the task. A broker that cannot be reached is logged; the row
    stays pending and the maintenance task enqueues it again."""
    # The one accepted function-level import: a service enqueuing its own task (tasks.py imports this room).
    from copilot_admin.usage.tasks import deliver_webhook

    for delivery_id in ids:
        try:
            deliver_webhook.apply_async(
                kwargs={"tenant_id": tenant_id, "delivery_id": delivery_id}, countdown=countdown
            )
        except Exception:
            logger.exception("Enqueueing webhook delivery %s failed; it stays pending.", delivery_id)


def webhook_event_emit(
    *, tenant: Tenant, event: str, key: str, summary: str, data: dict, occurred_at=None
) -> list[WebhookDelivery]:
    """Queue `event` for every active webhook of `tenant` subscribed to it, once per `key`.
    Call it inside the event's transaction. Never raises: a webhook must not fail the
    call or decision that caused the event (failures are logged)."""
    try:
        with transaction.atomic():
            hooks = _subscribed(tenant, event)
            if not hooks:
                return []
            payload = _envelope(tenant=tenant, event=event, summary=summary, data=data, occurred_at=occurred_at)
            return deliveries_create(tenant=tenant, hooks=hooks, event=event, key=key, payload=payload)
    except Exception:
        logger.exception("Queueing webhook event %s failed (tenant %s).", event, tenant.pk)
        return []


def _user(membership: Membership | None) -> dict | None:
    if membership is None:
        return None
    return {"id": membership.pk, "email": membership.user.email}


def webhook_limit_warning(*, warning: LimitWarning, membership: Membership | None) -> list[WebhookDelivery]:
    """`usage.limit_warning` for a crossed threshold (user limits name the user)."""
    percent = round(100 * warning.used / warning.limit_value) if warning.limit_value else 100
    who = f"{membership.user.email}: " if membership is not None else "The tenant: "
    summary = (
        f"{who}{LimitName(warning.limit).label} at {warning.used} of {warning.limit_value} ({percent}%, "
        f"warning at {warning.threshold_percent}%) in the window from {warning.window_start:%Y-%m-%d %H:%M} UTC"
    )
    return webhook_event_emit(
        tenant=warning.tenant,
        event=WebhookEvent.LIMIT_WARNING,
        key=f"warning:{warning.pk}",
        summary=summary,
        occurred_at=warning.created_at,
        data={
            "limit": warning.limit,
            "used": warning.used,
            "limit_value": warning.limit_value,
            "percent": percent,
            "threshold_percent": warning.threshold_percent,
            "window_start": warning.window_start.isoformat(),
            "user": _user(membership),
        },
    )


def _case_data(case: AbuseCase) -> dict:
    return {
        "case_id": case.pk,
        "kind": case.kind,
        "status": case.status,
        "user": _user(case.membership),
        "suspended_until": case.suspended_until.isoformat() if case.suspended_until else None,
    }


def webhook_access_changed(*, case: AbuseCase, kind: str, reason: str) -> list[WebhookDelivery]:
    """`usage.access_suspended|terminated|reinstated` beside the e-mail of the same change."""
    event = ACCESS_EVENTS[kind]
    return webhook_event_emit(
        tenant=case.tenant,
        event=event,
        key=f"case:{case.pk}:{kind}",
        summary=f"{case.membership.user.email}: {reason}",
        data=_case_data(case),
    )


def webhook_case_opened(*, case: AbuseCase) -> list[WebhookDelivery]:
    """`abuse.case_opened` for a case opened for review (suspensions and terminations have
    their own events, `usage.access_suspended` and `usage.access_terminated`)."""
    return webhook_event_emit(
        tenant=case.tenant,
        event=WebhookEvent.CASE_OPENED,
        key=f"case-opened:{case.pk}",
        summary=f"{case.get_kind_display()} case for {case.membership.user.email}: {case.summary}",
        occurred_at=case.opened_at,
        data=_case_data(case),
    )

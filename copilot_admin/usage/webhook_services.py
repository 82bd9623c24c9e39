"""A tenant's webhooks: create, change, delete, send a test event (`admin.limits`).

Each service checks the actor's permission itself, runs in one transaction and records its
change in the audit log with that actor; the signing secret never reaches the audit log (the
model excludes it; a new secret is recorded as the event `webhook.secret_rotate`). The URL is
checked against the SSRF rules (`webhook_http.webhook_url_check`) on every save that sets it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from copilot_admin.access.permissions import Perm
from copilot_admin.access.policy import permission_require
from copilot_admin.audit.services import audit_change_record, audit_event_record, audit_snapshot
from copilot_admin.core.errors import ApplicationError
from copilot_admin.usage import webhooks
from copilot_admin.usage.models import WEBHOOK_TEST_EVENT, Webhook, WebhookDelivery, WebhookEvent, WebhookFormat
from copilot_admin.usage.webhook_http import webhook_url_check
from tenants.models import Membership

MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 200


def _clean_events(events: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(events or []))
    unknown = [event for event in chosen if event not in WebhookEvent.values]
    if unknown:
        raise ApplicationError(f"Unknown event: {unknown[0]}.", code="validation_error", fields={"events": ["unknown"]})
    if not chosen:
        raise ApplicationError("Choose at least one event.", code="validation_error", fields={"events": ["required"]})
    return [event for event in WebhookEvent.values if event in chosen]


def _clean_secret(secret: str) -> str:
    secret = (secret or "").strip()
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise ApplicationError(
            f"The secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters.",
            code="validation_error",
            fields={"secret": ["length"]},
        )
    return secret


def _clean_format(fmt: str) -> str:
    if fmt not in WebhookFormat.values:
        raise ApplicationError("Unknown format.", code="validation_error", fields={"format": ["unknown"]})
    return fmt


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    if not url or len(url) > 500:
        raise ApplicationError(
            "Enter a URL of at most 500 characters.", code="validation_error", fields={"url": ["invalid"]}
        )
    webhook_url_check(url)
    return url


@transaction.atomic
def webhook_create(
    *,
    actor: Membership,
    url: str,
    events: Iterable[str],
    format: str = WebhookFormat.JSON,
    active: bool = True,
    secret: str | None = None,
) -> tuple[Webhook, str]:
    """Create a webhook; answers it and its secret (the given one, or a new random one when
    none is given) so the caller can show it this once."""
    permission_require(actor=actor, permission=Perm.LIMITS)
    secret = _clean_secret(secret) if secret else webhooks.secret_generate()
    webhook = Webhook.objects.for_tenant(actor.tenant).create(
        tenant=actor.tenant,
        url=_clean_url(url),
        events=_clean_events(events),
        format=_clean_format(format),
        active=bool(active),
        secret_ciphertext=webhooks.secret_encrypt(secret),
    )
    audit_change_record(actor=actor, tenant=actor.tenant, instance=webhook)
    return webhook, secret


@transaction.atomic
def webhook_update(*, actor: Membership, webhook: Webhook, **changes) -> Webhook:
    """Change url, events, format, active or secret. Switching a webhook on again clears its
    run of failures and the reason it was switched off."""
    permission_require(actor=actor, permission=Perm.LIMITS, tenant=webhook.tenant_id)
    webhook = Webhook.objects.for_tenant(actor.tenant).select_for_update().get(pk=webhook.pk)
    before = audit_snapshot(webhook)
    if "url" in changes and changes["url"] != webhook.url:
        webhook.url = _clean_url(changes["url"])
    if "events" in changes:
        webhook.events = _clean_events(changes["events"])
    if "format" in changes:
        webhook.format = _clean_format(changes["format"])
    if "active" in changes:
        active = bool(changes["active"])
        if active and not webhook.active:
            webhook.consecutive_failures = 0
            webhook.disabled_reason = ""
        webhook.active = active
    new_secret = changes.get("secret")
    if new_secret:
        webhook.secret_ciphertext = webhooks.secret_encrypt(_clean_secret(new_secret))
    webhook.save()
    audit_change_record(actor=actor, tenant=actor.tenant, instance=webhook, before=before)
    if new_secret:
        audit_event_record(
            tenant=actor.tenant,
            actor=actor,
            action="webhook.secret_rotate",
            object_type="webhook",
            object_id=webhook.pk,
            object_repr=str(webhook),
        )
    return webhook


@transaction.atomic
def webhook_delete(*, actor: Membership, webhook: Webhook) -> None:
    """Delete a webhook with its delivery log (pending deliveries are not sent)."""
    permission_require(actor=actor, permission=Perm.LIMITS, tenant=webhook.tenant_id)
    webhook = Webhook.objects.for_tenant(actor.tenant).select_for_update().get(pk=webhook.pk)
    audit_change_record(actor=actor, tenant=actor.tenant, instance=webhook, deleted=True)
    webhook.delete()


@transaction.atomic
def webhook_test_send(*, actor: Membership, webhook: Webhook) -> WebhookDelivery:
    """Queue a `webhook.test` event for this webhook (also when it is switched off, so a
    receiver can be checked before switching it on); recorded in the audit log."""
    permission_require(actor=actor, permission=Perm.LIMITS, tenant=webhook.tenant_id)
    tenant = actor.tenant
    webhook = Webhook.objects.for_tenant(tenant).get(pk=webhook.pk)
    audit_entry = audit_event_record(
        tenant=tenant,
        actor=actor,
        action="webhook.test",
        object_type="webhook",
        object_id=webhook.pk,
        object_repr=str(webhook),
    )
    payload = {
        "event": WEBHOOK_TEST_EVENT,
        "occurred_at": audit_entry.created_at.isoformat(),
        "tenant": {"slug": tenant.slug, "name": tenant.name},
        "summary": f"A test event sent by {actor.user.email}.",
        "data": {"webhook_id": webhook.pk},
    }
    delivery = WebhookDelivery.objects.for_tenant(tenant).create(
        tenant=tenant,
        webhook=webhook,
        event=WEBHOOK_TEST_EVENT,
        event_key=f"test:{audit_entry.pk}",
        payload=payload,
    )
    delivery_id, tenant_id = delivery.pk, tenant.pk
    transaction.on_commit(lambda: webhooks.deliveries_enqueue(tenant_id=tenant_id, ids=[delivery_id]), robust=True)
    return delivery

"""Webhooks, in process, against a real HTTP receiver on loopback: signing and its
verification, the formats, the outbox (once per event and webhook), retries with backoff on
5xx/timeouts/connection errors and none on 3xx/4xx, auto-disable with an e-mail, the events
raised by the usage rules, and the API's write-only secret and audit trail.

The SSRF rules have their own module (test_webhook_ssrf.py); delivery by a real Celery worker
under outage and worker kill is test_webhook_worker.py.
"""

import json
import socket
import time

import pytest
from django.core import mail

from copilot_admin.audit.models import AuditEntry
from copilot_admin.usage import abuse, webhook_services, webhooks
from copilot_admin.usage.models import (
    AbuseCase,
    DeliveryStatus,
    Notification,
    NotificationKind,
    StrikeKind,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookFormat,
)
from copilot_admin.usage.services import case_reinstate
from copilot_admin.usage.webhook_delivery import retry_delay_seconds, webhook_deliver
from tests.usage.helpers import call, set_policy
from tests.usage.webhook_receiver import Receiver

SECRET = "test-signing-secret-0123456789"


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rx(receiver, settings):
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    settings.WEBHOOK_RETRY_BACKOFF_SECONDS = 30
    settings.WEBHOOK_RETRY_BACKOFF_MAX_SECONDS = 3600
    settings.WEBHOOK_MAX_ATTEMPTS = 8
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    receiver.reset()
    return receiver


def make_hook(world, url, *, events=tuple(WebhookEvent.values), fmt=WebhookFormat.JSON, secret=SECRET) -> Webhook:
    hook, _ = webhook_services.webhook_create(
        actor=world.members["admin"], url=url, events=list(events), format=fmt, secret=secret
    )
    return hook


def emit(world, key="k1", event=WebhookEvent.CASE_OPENED):
    return webhooks.webhook_event_emit(
        tenant=world.tenant, event=event, key=key, summary="3 strikes within 60 minutes", data={"case_id": 7}
    )


def deliver(delivery):
    return webhook_deliver(tenant_id=delivery.tenant_id, delivery_id=delivery.pk)


# -- signing -------------------------------------------------------------------------------------


def test_signed_delivery_verifies_with_the_secret_and_nothing_else(tenant_a, rx):
    hook = make_hook(tenant_a, rx.url())
    (delivery,) = emit(tenant_a)
    assert deliver(delivery).status == DeliveryStatus.DELIVERED
    (request,) = rx.requests
    headers, body = request["headers"], request["body"]
    assert headers["x-copilot-admin-event"] == "abuse.case_opened"
    assert headers["x-copilot-admin-delivery"] == str(delivery.pk)
    assert headers["content-type"] == "application/json"
    timestamp, signature = headers["x-copilot-admin-timestamp"], headers["x-copilot-admin-signature"]
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert webhooks.signature_verify(secret=SECRET, body=body, timestamp=timestamp, signature=signature)
    # The recipe by hand: HMAC-SHA256 over "<timestamp>.<raw body>".
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert not webhooks.signature_verify(
        secret="another-secret-0123456789", body=body, timestamp=timestamp, signature=signature
    )
    assert not webhooks.signature_verify(secret=SECRET, body=body + b" ", timestamp=timestamp, signature=signature)
    assert not webhooks.signature_verify(
        secret=SECRET, body=body, timestamp=str(int(timestamp) + 1), signature=signature
    )
    document = json.loads(body)
    assert document["id"] == delivery.pk and document["event"] == "abuse.case_opened"
    assert document["tenant"] == {"slug": "alpha", "name": "Alpha MSP"}
    assert document["data"] == {"case_id": 7}
    hook.refresh_from_db()
    assert SECRET not in hook.secret_ciphertext  # encrypted at rest


def test_replay_window_refuses_an_old_timestamp():
    body, now = b'{"event":"x"}', 1_800_000_000
    signature = webhooks.signature_compute(secret=SECRET, timestamp=str(now - 301), body=body)
    assert not webhooks.signature_verify(
        secret=SECRET, body=body, timestamp=str(now - 301), signature=signature, now=now, tolerance_seconds=300
    )
    signature = webhooks.signature_compute(secret=SECRET, timestamp=str(now - 299), body=body)
    assert webhooks.signature_verify(
        secret=SECRET, body=body, timestamp=str(now - 299), signature=signature, now=now, tolerance_seconds=300
    )
    assert not webhooks.signature_verify(secret=SECRET, body=body, timestamp="not-a-time", signature=signature)


@pytest.mark.parametrize("fmt", [WebhookFormat.TEAMS, WebhookFormat.SLACK])
def test_teams_and_slack_formats(tenant_a, rx, fmt):
    make_hook(tenant_a, rx.url(), fmt=fmt)
    (delivery,) = emit(tenant_a)
    deliver(delivery)
    document = json.loads(rx.requests[0]["body"])
    if fmt == WebhookFormat.SLACK:
        assert "3 strikes within 60 minutes" in document["text"]
        assert document["blocks"][0]["type"] == "header"
    else:
        assert document["type"] == "message"
        (attachment,) = document["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard"
        assert any("3 strikes" in block.get("text", "") for block in card["body"])
    assert "x-copilot-admin-signature" in rx.requests[0]["headers"]


# -- the outbox ------------------------------------------------------------------------------------


def test_one_delivery_per_event_and_webhook_and_one_request(tenant_a, rx):
    first = make_hook(tenant_a, rx.url("/one"))
    second = make_hook(tenant_a, rx.url("/two"), events=[WebhookEvent.LIMIT_WARNING])
    third = make_hook(tenant_a, rx.url("/three"))
    webhook_services.webhook_update(actor=tenant_a.members["admin"], webhook=third, active=False)
    deliveries = emit(tenant_a)
    assert [d.webhook_id for d in deliveries] == [first.pk]  # not subscribed, not active: nothing
    assert emit(tenant_a) == []  # the same event again
    assert WebhookDelivery.objects.for_tenant(tenant_a.tenant).count() == 1
    assert deliver(deliveries[0]).status == DeliveryStatus.DELIVERED
    assert deliver(deliveries[0]).status == DeliveryStatus.DELIVERED  # a redelivered task sends nothing
    assert len(rx.requests) == 1
    assert second.pk and third.pk


# -- retries ------------------------------------------------------------------------------------


def test_backoff_schedule_doubles_and_is_capped(settings):
    settings.WEBHOOK_RETRY_BACKOFF_SECONDS = 30
    settings.WEBHOOK_RETRY_BACKOFF_MAX_SECONDS = 600
    assert [retry_delay_seconds(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]


def test_5xx_is_retried_with_backoff_until_delivered(tenant_a, rx):
    make_hook(tenant_a, rx.url())
    rx.answers.extend([503, 500, 502])
    (delivery,) = emit(tenant_a)
    results = [deliver(delivery) for _ in range(4)]
    assert [(r.status, r.retry_in) for r in results] == [
        ("pending", 30),
        ("pending", 60),
        ("pending", 120),
        ("delivered", None),
    ]
    delivery.refresh_from_db()
    assert delivery.attempts == 4 and delivery.response_status == 200 and delivery.next_attempt_at is None
    log = list(WebhookAttempt.objects.for_tenant(tenant_a.tenant).filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.response_status, a.retry_in_seconds) for a in log] == [
        (1, 503, 30),
        (2, 500, 60),
        (3, 502, 120),
        (4, 200, None),
    ]
    assert all(a.latency_ms >= 0 for a in log)
    assert len({r["headers"]["x-copilot-admin-delivery"] for r in rx.requests}) == 1


def test_retries_stop_at_the_last_attempt(tenant_a, rx, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    make_hook(tenant_a, rx.url())
    rx.default_status = 503
    (delivery,) = emit(tenant_a)
    assert [deliver(delivery).retry_in for _ in range(3)] == [30, 60, None]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    assert deliver(delivery).status == DeliveryStatus.FAILED
    assert len(rx.requests) == 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_and_timeout_are_retried(tenant_a, rx):
    make_hook(tenant_a, f"http://127.0.0.1:{_closed_port()}/hook", events=[WebhookEvent.CASE_OPENED])
    (refused,) = emit(tenant_a, key="refused")
    result = deliver(refused)
    assert (result.status, result.retry_in) == ("pending", 30)
    refused.refresh_from_db()
    assert refused.response_status is None and refused.last_error

    Webhook.objects.for_tenant(tenant_a.tenant).update(active=False)
    make_hook(tenant_a, rx.url(), events=[WebhookEvent.CASE_OPENED])
    rx.answers.append("slow")  # answers after the 1-second timeout
    (slow,) = emit(tenant_a, key="slow")
    result = deliver(slow)
    assert (result.status, result.retry_in) == ("pending", 30)
    slow.refresh_from_db()
    assert "Timeout" in slow.last_error or "timed out" in slow.last_error


@pytest.mark.parametrize("answer", [400, 401, 404, 410, 422, 429])
def test_4xx_is_not_retried(tenant_a, rx, answer):
    make_hook(tenant_a, rx.url())
    rx.answers.append(answer)
    (delivery,) = emit(tenant_a)
    result = deliver(delivery)
    assert (result.status, result.retry_in) == (DeliveryStatus.FAILED, None)
    assert deliver(delivery).status == DeliveryStatus.FAILED
    assert len(rx.requests) == 1


def test_redirects_are_not_followed(tenant_a, rx):
    make_hook(tenant_a, rx.url())
    rx.answers.append(302)  # Location: the receiver's /redirected
    (delivery,) = emit(tenant_a)
    result = deliver(delivery)
    assert (result.status, result.retry_in) == (DeliveryStatus.FAILED, None)
    assert [r["path"] for r in rx.requests] == ["/hook"]
    delivery.refresh_from_db()
    assert "redirects are not followed" in delivery.last_error


# -- auto-disable ---------------------------------------------------------------------------------


def test_repeated_failures_switch_the_webhook_off_and_email_the_administrators(tenant_a, rx, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    hook = make_hook(tenant_a, rx.url())
    rx.default_status = 400
    for n in range(2):
        (delivery,) = emit(tenant_a, key=f"fail-{n}")
        deliver(delivery)
    hook.refresh_from_db()
    assert hook.active and hook.consecutive_failures == 2
    rx.answers.append(200)  # a delivered event resets the run
    (delivery,) = emit(tenant_a, key="ok")
    deliver(delivery)
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0
    for n in range(3):
        (delivery,) = emit(tenant_a, key=f"again-{n}")
        deliver(delivery)
    hook.refresh_from_db()
    assert not hook.active and hook.consecutive_failures == 3
    assert "3 failed deliveries in a row" in hook.disabled_reason
    entry = AuditEntry.objects.for_tenant(tenant_a.tenant).filter(action="webhook.update").latest("created_at")
    assert entry.actor_id is None and entry.changes["active"] == ["on", "off"]
    notes = Notification.objects.for_tenant(tenant_a.tenant).filter(kind=NotificationKind.WEBHOOK_DISABLED)
    assert [n.to_email for n in notes] == ["admin@alpha.test"]
    assert emit(tenant_a, key="after") == []  # switched off: nothing queued
    # Switched on again by an administrator: the run starts over.
    webhook_services.webhook_update(actor=tenant_a.members["admin"], webhook=hook, active=True)
    hook.refresh_from_db()
    assert hook.active and hook.consecutive_failures == 0 and hook.disabled_reason == ""
    assert mail.outbox == [] or all("webhook" in m.subject.lower() for m in mail.outbox)


def test_pending_deliveries_of_a_switched_off_webhook_are_cancelled(tenant_a, rx):
    hook = make_hook(tenant_a, rx.url())
    (delivery,) = emit(tenant_a)
    webhook_services.webhook_update(actor=tenant_a.members["admin"], webhook=hook, active=False)
    assert deliver(delivery).status == DeliveryStatus.CANCELLED
    assert rx.requests == []


def test_test_event_is_sent_even_to_a_switched_off_webhook(tenant_a, rx):
    hook = make_hook(tenant_a, rx.url())
    webhook_services.webhook_update(actor=tenant_a.members["admin"], webhook=hook, active=False)
    delivery = webhook_services.webhook_test_send(actor=tenant_a.members["admin"], webhook=hook)
    assert deliver(delivery).status == DeliveryStatus.DELIVERED
    assert rx.requests[0]["headers"]["x-copilot-admin-event"] == "webhook.test"
    assert AuditEntry.objects.for_tenant(tenant_a.tenant).filter(action="webhook.test").count() == 1


# -- the events of the usage rules ----------------------------------------------------------------


def _events(world):
    return sorted(WebhookDelivery.objects.for_tenant(world.tenant).values_list("event", flat=True))


def test_a_crossed_warning_threshold_queues_limit_warning(tenant_a, rx):
    make_hook(tenant_a, rx.url())
    set_policy(user_requests_per_day=10, warning_threshold_percent=50)
    for _ in range(7):
        call(tenant_a.members["tech"])
    assert _events(tenant_a) == [WebhookEvent.LIMIT_WARNING]
    delivery = WebhookDelivery.objects.for_tenant(tenant_a.tenant).get()
    data = delivery.payload["data"]
    assert data["limit"] == "user_requests_per_day" and data["limit_value"] == 10
    assert data["user"]["email"] == "tech@alpha.test"
    assert set(delivery.payload) == {"event", "occurred_at", "tenant", "summary", "data"}


def test_suspension_and_reinstatement_queue_their_events(tenant_a, rx):
    make_hook(tenant_a, rx.url())
    set_policy(strike_limit=1)
    case = abuse.strike_record(membership=tenant_a.members["tech"], kind=StrikeKind.CONTENT_FILTER)
    assert isinstance(case, AbuseCase)
    assert _events(tenant_a) == [WebhookEvent.ACCESS_SUSPENDED]
    suspended = WebhookDelivery.objects.for_tenant(tenant_a.tenant).get()
    assert suspended.payload["data"]["case_id"] == case.pk and suspended.payload["data"]["suspended_until"]
    case_reinstate(actor=tenant_a.members["admin"], case=case, reason="False alarm, talked to the technician")
    assert _events(tenant_a) == [WebhookEvent.ACCESS_REINSTATED, WebhookEvent.ACCESS_SUSPENDED]


def test_a_review_case_queues_case_opened(tenant_a, rx):
    from datetime import timedelta

    from django.utils import timezone

    from copilot_admin.usage.models import HourlyUsage

    make_hook(tenant_a, rx.url())
    set_policy(user_requests_per_hour=100, review_near_limit_percent=90, review_sustained_hours=8)
    tech, tenant = tenant_a.members["tech"], tenant_a.tenant
    now = timezone.now()
    for hour in range(1, 10):
        HourlyUsage.objects.for_tenant(tenant).create(
            tenant=tenant,
            membership=tech,
            requests=95,
            hour=now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hour),
        )
    (case,) = abuse.usage_patterns_review(now=now)
    assert _events(tenant_a) == [WebhookEvent.CASE_OPENED]
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.payload["data"]["case_id"] == case.pk and delivery.payload["data"]["kind"] == "review"
    assert "hourly request limit" in delivery.payload["summary"]


def test_an_event_never_fails_the_cause(tenant_a, rx, monkeypatch):
    make_hook(tenant_a, rx.url())

    def broken(*args, **kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(webhooks, "deliveries_create", broken)
    set_policy(strike_limit=1)
    case = abuse.strike_record(membership=tenant_a.members["tech"], kind=StrikeKind.CONTENT_FILTER)
    assert isinstance(case, AbuseCase)


# -- the API: write-only secret, audit ------------------------------------------------------------


def test_api_secret_is_write_only_and_shown_once(tenant_a, rx, api_for):
    api = api_for(tenant_a.members["admin"].user)
    base = "/api/v1/tenants/alpha/webhooks/"
    created = api.post(base, {"url": rx.url(), "events": ["usage.limit_warning"], "format": "slack"})
    assert created.status_code == 201, created.content
    secret = created.json()["signing_secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    hook_id = created.json()["id"]
    shown = api.get(f"{base}{hook_id}/").json()
    assert "secret" not in shown and "signing_secret" not in shown
    assert secret not in json.dumps(api.get(base).json())
    own = api.post(base, {"url": rx.url(), "events": ["abuse.case_opened"], "secret": "my-own-secret-0123456789"})
    assert own.json()["signing_secret"] == "my-own-secret-0123456789"
    changed = api.patch(f"{base}{hook_id}/", {"secret": "rotated-secret-0123456789", "active": False})
    assert changed.status_code == 200 and "secret" not in changed.json() and changed.json()["active"] is False
    hook = Webhook.objects.for_tenant(tenant_a.tenant).get(pk=hook_id)
    assert webhooks.secret_decrypt(hook.secret_ciphertext) == "rotated-secret-0123456789"
    entries = AuditEntry.objects.for_tenant(tenant_a.tenant).filter(object_type="webhook")
    assert {"webhook.create", "webhook.update", "webhook.secret_rotate"} <= set(
        entries.values_list("action", flat=True)
    )
    dump = json.dumps(list(entries.values("changes", "metadata")))
    for value in (secret, "rotated-secret-0123456789", "my-own-secret-0123456789", hook.secret_ciphertext):
        assert value not in dump
    assert api.delete(f"{base}{hook_id}/").status_code == 204
    assert entries.filter(action="webhook.delete").count() == 1


def test_api_test_button_and_delivery_log(tenant_a, rx, api_for):
    api = api_for(tenant_a.members["admin"].user)
    hook = make_hook(tenant_a, rx.url())
    answer = api.post(f"/api/v1/tenants/alpha/webhooks/{hook.pk}/test/")
    assert answer.status_code == 201 and answer.json()["event"] == "webhook.test"
    deliver(WebhookDelivery.objects.for_tenant(tenant_a.tenant).get(pk=answer.json()["id"]))
    log = api.get(f"/api/v1/tenants/alpha/webhooks/{hook.pk}/deliveries/").json()
    (row,) = log["results"]
    assert row["status"] == "delivered" and row["response_status"] == 200
    assert row["attempt_log"][0]["number"] == 1 and row["attempt_log"][0]["latency_ms"] >= 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "https://example.invalid/", "events": []}, "events"),
        ({"url": "https://example.invalid/", "events": ["usage.unknown"]}, "events"),
        ({"url": "ftp://example.invalid/", "events": ["abuse.case_opened"]}, "url"),
        ({"url": "http://127.0.0.1/", "events": ["abuse.case_opened"], "secret": "short"}, "secret"),
        ({"url": "http://127.0.0.1/", "events": ["abuse.case_opened"], "format": "xml"}, "format"),
        ({"url": "http://127.0.0.1/", "events": ["abuse.case_opened"], "colour": "red"}, "colour"),
    ],
)
def test_api_refuses_bad_input(tenant_a, rx, api_for, body, field):
    answer = api_for(tenant_a.members["admin"].user).post("/api/v1/tenants/alpha/webhooks/", body)
    assert answer.status_code == 400, answer.content
    assert field in json.dumps(answer.json())


# -- pages --------------------------------------------------------------------------------------


def test_pages_create_shows_the_secret_once(tenant_a, rx, client):
    client.force_login(tenant_a.members["admin"].user)
    created = client.post(
        "/t/alpha/usage/webhooks/new/",
        {
            "url": rx.url(),
            "events": ["usage.limit_warning", "abuse.case_opened"],
            "format": "json",
            "active": "on",
        },
    )
    assert created.status_code == 201
    hook = Webhook.objects.for_tenant(tenant_a.tenant).get()
    secret = webhooks.secret_decrypt(hook.secret_ciphertext)
    assert secret in created.content.decode()
    edit = client.get(f"/t/alpha/usage/webhooks/{hook.pk}/")
    assert edit.status_code == 200 and secret not in edit.content.decode()
    sent = client.post(f"/t/alpha/usage/webhooks/{hook.pk}/test/")
    assert sent.status_code == 302
    assert WebhookDelivery.objects.for_tenant(tenant_a.tenant).filter(event="webhook.test").count() == 1
    log = client.get(f"/t/alpha/usage/webhooks/{hook.pk}/deliveries/")
    assert log.status_code == 200 and "webhook.test" in log.content.decode()
    refused = client.post(
        f"/t/alpha/usage/webhooks/{hook.pk}/",
        {"url": "https://10.0.0.1/", "events": ["abuse.case_opened"], "format": "json"},
    )
    assert refused.status_code == 200 and "not allowed" in refused.content.decode()
    assert client.post(f"/t/alpha/usage/webhooks/{hook.pk}/delete/").status_code == 302
    assert not Webhook.objects.for_tenant(tenant_a.tenant).exists()


def test_latency_is_measured_within_the_attempt(tenant_a, rx):
    make_hook(tenant_a, rx.url())
    (delivery,) = emit(tenant_a)
    before = time.monotonic()
    deliver(delivery)
    delivery.refresh_from_db()
    assert 0 <= delivery.latency_ms <= (time.monotonic() - before) * 1000 + 1


# -- query counts ---------------------------------------------------------------------------------


def _queries(fn) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = fn()
    assert response.status_code == 200
    return len(captured.captured_queries)


def _grow(world, hook, count, start):
    for n in range(start, start + count):
        (delivery,) = webhooks.webhook_event_emit(
            tenant=world.tenant, event=WebhookEvent.CASE_OPENED, key=f"grow-{n}", summary="s", data={}
        )
        for number in (1, 2):
            WebhookAttempt.objects.for_tenant(world.tenant).create(
                tenant=world.tenant, delivery=delivery, number=number, response_status=503, latency_ms=3
            )
    for n in range(start, start + count):
        make_hook(world, f"http://127.0.0.1:9/extra-{n}", events=[WebhookEvent.LIMIT_WARNING])


def test_webhook_pages_and_delivery_log_query_counts_are_flat(tenant_a, rx, client, api_for):
    hook = make_hook(tenant_a, rx.url())
    client.force_login(tenant_a.members["admin"].user)
    api = api_for(tenant_a.members["admin"].user)
    fetches = [
        lambda: client.get("/t/alpha/usage/webhooks/"),
        lambda: client.get(f"/t/alpha/usage/webhooks/{hook.pk}/deliveries/"),
        lambda: api.get("/api/v1/tenants/alpha/webhooks/"),
        lambda: api.get(f"/api/v1/tenants/alpha/webhooks/{hook.pk}/deliveries/"),
    ]
    _grow(tenant_a, hook, 1, 0)
    for fetch in fetches:  # warm the per-request caches (the access decision's) first
        fetch()
    few = [_queries(fetch) for fetch in fetches]
    _grow(tenant_a, hook, 30, 1)
    many = [_queries(fetch) for fetch in fetches]
    assert few == many


# -- test events, lost tasks, eager runs ----------------------------------------------------------


def test_test_events_do_not_count_towards_switching_off(tenant_a, rx):
    hook = make_hook(tenant_a, rx.url())
    rx.default_status = 400
    for _ in range(4):
        deliver(webhook_services.webhook_test_send(actor=tenant_a.members["admin"], webhook=hook))
    hook.refresh_from_db()
    assert hook.active and hook.consecutive_failures == 0


def test_deliveries_whose_task_was_lost_are_enqueued_again(tenant_a, rx, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from copilot_admin.usage.webhook_delivery import webhook_deliveries_resend_pending

    make_hook(tenant_a, rx.url())
    now = timezone.now()
    lost, fresh, overdue, waiting, done = (emit(tenant_a, key=f"k{n}")[0] for n in range(5))
    deliveries = WebhookDelivery.objects.for_tenant(tenant_a.tenant)
    deliveries.filter(pk__in=[lost.pk, overdue.pk, waiting.pk, done.pk]).update(created_at=now - timedelta(hours=1))
    deliveries.filter(pk=overdue.pk).update(attempts=2, next_attempt_at=now - timedelta(minutes=10))
    deliveries.filter(pk=waiting.pk).update(attempts=2, next_attempt_at=now + timedelta(minutes=10))
    deliveries.filter(pk=done.pk).update(status=DeliveryStatus.DELIVERED)
    enqueued = []
    monkeypatch.setattr(webhooks, "deliveries_enqueue", lambda *, tenant_id, ids, countdown=None: enqueued.extend(ids))
    assert webhook_deliveries_resend_pending(now=now) == 2
    assert sorted(enqueued) == sorted([lost.pk, overdue.pk])
    assert fresh.pk not in enqueued


def test_an_eager_run_leaves_the_retry_to_the_maintenance_task(tenant_a, rx):
    from copilot_admin.usage.tasks import deliver_webhook

    make_hook(tenant_a, rx.url())
    rx.default_status = 503
    (delivery,) = emit(tenant_a)
    result = deliver_webhook.apply(kwargs={"tenant_id": tenant_a.tenant.pk, "delivery_id": delivery.pk})
    assert result.get() == DeliveryStatus.PENDING
    assert len(rx.requests) == 1  # no retry run in-process
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is not None

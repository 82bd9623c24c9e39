"""Webhook delivery end to end, with real services, the same proof as the e-mails
(tests/usage/test_delivery.py): a Celery worker subprocess (Redis broker) on the test's
PostgreSQL database, posting to a real HTTP receiver on loopback.

- receiver down (connection refused), then answering 503, then up: every event arrives and is
  acknowledged exactly once per webhook (retries with backoff; the outbox row decides);
- the worker's process is killed (SIGKILL) while the receiver holds the request: the task is
  requeued (acks_late, reject_on_worker_lost), the receiver never acknowledged the cut request,
  and the delivery is acknowledged exactly once, under the same delivery id.
"""

import os
import signal
import time
from collections import Counter

import pytest
from django.db import transaction

from copilot_admin.usage import webhook_services, webhooks
from copilot_admin.usage.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from tests.usage.celery_service import running_worker, use_broker
from tests.usage.helpers import call, set_policy
from tests.usage.redis_service import require_redis
from tests.usage.smtp_service import SmtpServer
from tests.usage.webhook_receiver import Receiver

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

WAIT = 60
SECRETS_KEY = "webhook-worker-test-key"



@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, smtp, tmp_path_factory):
    env = {
        "WEBHOOK_SECRETS_KEY": SECRETS_KEY,
        "WEBHOOK_ALLOW_HTTP_LOOPBACK": "true",
        "WEBHOOK_RETRY_BACKOFF_SECONDS": "1",
        "WEBHOOK_RETRY_BACKOFF_MAX_SECONDS": "2",
        "WEBHOOK_MAX_ATTEMPTS": "30",
        "WEBHOOK_TIMEOUT_SECONDS": "30",
    }
    with running_worker(django_db_blocker=django_db_blocker, smtp_port=smtp.port,
                        log_dir=tmp_path_factory.mktemp("celery"), env=env) as process:
        yield process


@pytest.fixture
def delivery(worker, receiver, smtp, settings):
    settings.REDIS_URL = require_redis()
    settings.WEBHOOK_SECRETS_KEY = SECRETS_KEY
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    receiver.start()
    receiver.reset()
    smtp.start()
    smtp.reset()
    with use_broker(worker):
        yield worker, receiver


def wait_until(predicate, *, timeout=WAIT, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def rows(world):
    return WebhookDelivery.objects.for_tenant(world.tenant)


def assert_each_acknowledged_once(receiver, world):
    acknowledged = Counter(r["headers"]["x-copilot-admin-delivery"] for r in receiver.acknowledged())
    assert all(count == 1 for count in acknowledged.values()), acknowledged
    assert set(acknowledged) == {str(pk) for pk in rows(world).values_list("pk", flat=True)}
    for request in receiver.acknowledged():
        headers = request["headers"]
        assert webhooks.signature_verify(
            secret="worker-test-secret-0123456789",
            body=request["body"],
            timestamp=headers["x-copilot-admin-timestamp"],
            signature=headers["x-copilot-admin-signature"],
        )


def _hook(world, receiver, path="/hook"):
    hook, _ = webhook_services.webhook_create(
        actor=world.members["admin"],
        url=receiver.url(path),
        events=list(WebhookEvent.values),
        secret="worker-test-secret-0123456789",
    )
    return hook


def _emit(world, key):
    with transaction.atomic():
        webhooks.webhook_event_emit(
            tenant=world.tenant,
            event=WebhookEvent.CASE_OPENED,
            key=key,
            summary="review case opened",
            data={"key": key},
        )


def test_receiver_down_then_failing_then_up_delivers_every_event_exactly_once(tenant_a, delivery):
    worker, receiver = delivery
    _hook(tenant_a, receiver, "/one")
    _hook(tenant_a, receiver, "/two")
    receiver.stop()  # connection refused
    set_policy(user_requests_per_day=4, warning_threshold_percent=50)
    for _ in range(2):
        call(tenant_a.members["tech"])  # a real limit warning (and its e-mails)
    for n in range(2):
        _emit(tenant_a, f"outage-{n}")
    assert rows(tenant_a).count() == 6  # three events for each of two webhooks
    wait_until(
        lambda: all(r.attempts >= 1 and r.last_error for r in rows(tenant_a)),
        what=f"failed first attempts; worker log: {worker.log()[-2000:]}",
    )
    assert set(rows(tenant_a).values_list("status", flat=True)) == {DeliveryStatus.PENDING}
    receiver.answers.extend([503, 503, 500])
    receiver.start()
    wait_until(
        lambda: set(rows(tenant_a).values_list("status", flat=True)) == {DeliveryStatus.DELIVERED},
        what=f"all delivered; worker log: {worker.log()[-2000:]}",
    )
    time.sleep(2)  # anything sent twice would have arrived by now
    assert len(receiver.acknowledged()) == 6
    assert_each_acknowledged_once(receiver, tenant_a)
    assert Counter(r["path"] for r in receiver.acknowledged()) == {"/one": 3, "/two": 3}
    assert any(r["status"] in (500, 503) for r in receiver.requests)


def test_worker_killed_mid_request_still_delivers_exactly_once(tenant_a, delivery):
    worker, receiver = delivery
    _hook(tenant_a, receiver)
    receiver.hold_next()
    _emit(tenant_a, "kill")
    assert receiver.held.wait(WAIT), worker.log()[-2000:]
    children = worker.pool_children()
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)  # the posting process dies before the receiver answers
    time.sleep(0.5)
    receiver.release()
    wait_until(
        lambda: set(rows(tenant_a).values_list("status", flat=True)) == {DeliveryStatus.DELIVERED},
        what=f"delivered after the kill; worker log: {worker.log()[-3000:]}",
    )
    time.sleep(2)
    assert_each_acknowledged_once(receiver, tenant_a)
    (row,) = rows(tenant_a)
    assert [r["aborted"] for r in receiver.requests] == [True, False]
    assert {r["headers"]["x-copilot-admin-delivery"] for r in receiver.requests} == {str(row.pk)}
    assert row.attempts == 1  # the cut attempt rolled back with its transaction
    assert "WorkerLostError" in worker.log() or "exited prematurely" in worker.log()

"""Notification e-mails end to end, with real services: a Celery worker subprocess (Redis
broker) on the test's PostgreSQL database, sending through a real SMTP server (aiosmtpd).

- a threshold warning arrives once, however many calls follow;
- SMTP down, then up: every warning arrives, exactly once (retries with backoff);
- the worker's process is killed (SIGKILL) in the middle of sending: the task is requeued
  (acks_late, reject_on_worker_lost) and the e-mail still arrives exactly once (the
  Notification row decides).
"""

import os
import signal
import time
from collections import Counter

import pytest

from copilot_admin.usage.models import Notification, NotificationStatus
from tests.usage.celery_service import running_worker, use_broker
from tests.usage.helpers import call, set_policy
from tests.usage.redis_service import require_redis
from tests.usage.smtp_service import SmtpServer

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


WAIT = 60


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, smtp, tmp_path_factory):
    with running_worker(django_db_blocker=django_db_blocker, smtp_port=smtp.port,
                        log_dir=tmp_path_factory.mktemp("celery")) as process:
        yield process


@pytest.fixture
def delivery(worker, smtp, settings):
    settings.REDIS_URL = require_redis()
    smtp.start()
    smtp.reset()
    with use_broker(worker):
        yield worker, smtp


def notifications(tenant):
    return Notification.objects.for_tenant(tenant)


def wait_until(predicate, *, timeout=WAIT, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def assert_each_once(messages, tenant):
    ids = Counter(message["message_id"] for message in messages)
    assert all(count == 1 for count in ids.values()), ids
    expected = {f"<notification.{tenant.pk}.{pk}@copilot-admin.localhost>"
                for pk in notifications(tenant).values_list("pk", flat=True)}
    assert set(ids) == expected


def test_threshold_warning_arrives_once(tenant_a, delivery):
    worker, smtp = delivery
    set_policy(user_requests_per_day=10, warning_threshold_percent=50, warning_thresholds=[])  # 50% only
    tech = tenant_a.members["tech"]
    for _ in range(8):
        call(tech)
    messages = smtp.wait_for(2, timeout=WAIT)
    assert sorted(m["to"][0] for m in messages) == ["admin@alpha.test", "tech@alpha.test"], worker.log()[-2000:]
    assert all("user_requests_per_day" in m["raw"].decode() for m in messages)
    for _ in range(2):
        call(tech)
    time.sleep(2)  # anything sent twice would have arrived by now
    assert len(smtp.messages) == 2
    assert_each_once(smtp.messages, tenant_a.tenant)
    assert set(notifications(tenant_a.tenant).values_list("status", flat=True)) == {NotificationStatus.SENT}


def test_smtp_down_then_up_delivers_every_warning_exactly_once(tenant_a, delivery):
    worker, smtp = delivery
    set_policy(user_requests_per_day=4, warning_threshold_percent=50)
    smtp.stop()
    for key in ("tech", "comanaged", "auditor"):
        for _ in range(2):
            call(tenant_a.members[key])
    rows = notifications(tenant_a.tenant)
    assert rows.count() == 6  # three users crossed: each user and the administrator
    wait_until(lambda: all(n.attempts >= 1 and n.last_error for n in rows.all()), what="failed first attempts")
    assert set(rows.values_list("status", flat=True)) == {NotificationStatus.PENDING}
    smtp.start()
    wait_until(lambda: set(rows.values_list("status", flat=True)) == {NotificationStatus.SENT},
               what=f"all sent; worker log: {worker.log()[-2000:]}")
    time.sleep(2)
    assert len(smtp.messages) == 6
    assert_each_once(smtp.messages, tenant_a.tenant)
    assert sorted(m["to"][0] for m in smtp.messages).count("admin@alpha.test") == 3


def test_worker_killed_mid_send_still_sends_exactly_once(tenant_a, delivery):
    worker, smtp = delivery
    set_policy(user_requests_per_day=2, warning_threshold_percent=50)
    smtp.handler.hold_next()
    call(tenant_a.members["auditor"])  # one warning: to the auditor and to the administrator
    assert smtp.handler.held.wait(WAIT), worker.log()[-2000:]
    children = worker.pool_children()
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)  # the sending process dies before the server's 250
    time.sleep(0.5)
    smtp.handler.release()
    rows = notifications(tenant_a.tenant)
    wait_until(lambda: set(rows.values_list("status", flat=True)) == {NotificationStatus.SENT},
               what=f"sent after the kill; worker log: {worker.log()[-3000:]}")
    time.sleep(2)
    assert_each_once(smtp.messages, tenant_a.tenant)
    assert len(smtp.messages) == rows.count() == 2
    assert "WorkerLostError" in worker.log() or "exited prematurely" in worker.log()

"""Notification rows decide what is sent: once per cause and recipient, never twice, failures
recorded and retried, lost tasks enqueued again."""

import os
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.utils import timezone

from copilot_admin.usage import alerts as notify
from copilot_admin.usage.models import Notification, NotificationStatus, PlatformLimitPolicy


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that cannot be reached."""

    def send_messages(self, messages):
        raise ConnectionRefusedError(111, "Connection refused")


def one_notification(world, *, cause="test:1") -> Notification:
    (notification,) = notify.notify(
        tenant=world.tenant, kind="limit_warning", recipients=[world.members["tech"].user],
        subject="Copilot usage warning", reason="tech@alpha.test: user_requests_per_day at 8 of 10", cause=cause,
    )
    return notification


def test_one_notification_per_cause_and_recipient(tenant_a):
    first = one_notification(tenant_a)
    assert notify.notify(tenant=tenant_a.tenant, kind="limit_warning",
                         recipients=[tenant_a.members["tech"].user, tenant_a.members["tech"].user],
                         subject="s", reason="r", cause="test:1") == []
    assert Notification.objects.for_tenant(tenant_a.tenant).get() == first


def test_delivery_is_idempotent(tenant_a):
    notification = one_notification(tenant_a)
    assert notify.notification_deliver(tenant_id=tenant_a.tenant.pk, notification_id=notification.pk) == "sent"
    assert notify.notification_deliver(tenant_id=tenant_a.tenant.pk, notification_id=notification.pk) == "sent"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    expected_id = f"<notification.{tenant_a.tenant.pk}.{notification.pk}@copilot-admin.localhost>"
    assert message.extra_headers["Message-ID"] == expected_id
    assert notify.notification_deliver(tenant_id=tenant_a.tenant.pk + 999, notification_id=notification.pk) == "missing"


def test_smtp_failure_is_recorded_retried_and_finally_failed(tenant_a, settings):
    settings.EMAIL_BACKEND = "tests.usage.test_alerts.RefusingBackend"
    notification = one_notification(tenant_a)
    with pytest.raises(ConnectionRefusedError):
        notify.notification_deliver(tenant_id=tenant_a.tenant.pk, notification_id=notification.pk)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in notification.last_error
    with pytest.raises(ConnectionRefusedError):
        notify.notification_deliver(tenant_id=tenant_a.tenant.pk, notification_id=notification.pk, final_attempt=True)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", 2)


def test_lost_tasks_are_enqueued_again(tenant_a, django_capture_on_commit_callbacks):
    notification = one_notification(tenant_a)  # its on-commit enqueue never ran: the task was lost
    assert notify.notifications_resend_pending() == 0  # too young to be called lost
    Notification.objects.for_tenant(tenant_a.tenant).update(created_at=timezone.now() - timedelta(minutes=10))
    assert notify.notifications_resend_pending() == 1
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT and len(mail.outbox) == 1
    assert notify.notifications_resend_pending() == 0


def test_seed_demo_writes_the_default_policy(db):
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert PlatformLimitPolicy.objects.get().user_requests_per_minute == PlatformLimitPolicy().user_requests_per_minute

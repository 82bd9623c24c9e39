"""The daily e-mail of signed checkpoints to each tenant's auditors (not its administrators),
once per day, with the file `audit_verify --checkpoints` reads; off unless configured."""

import json
from datetime import timedelta

from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from copilot_admin.audit.checkpoints import FORMAT, checkpoints_load
from copilot_admin.audit.services import audit_seal
from copilot_admin.compliance.checkpoint_mail import checkpoint_auditors, checkpoints_mail_all
from copilot_admin.compliance.tasks import checkpoints_mail_daily


def test_auditors_get_yesterdays_checkpoints_once(tenant_a, tenant_b, settings):
    settings.AUDIT_CHECKPOINT_EMAIL = True
    cache.clear()
    audit_seal()
    tomorrow = timezone.now() + timedelta(days=1)
    assert checkpoint_auditors(tenant=tenant_a.tenant) == ["auditor@alpha.test"]
    assert checkpoints_mail_all(now=tomorrow) == 2
    alpha = next(m for m in mail.outbox if m.to == ["auditor@alpha.test"])
    _name, content, mimetype = alpha.attachments[0]
    chain, checkpoints = checkpoints_load(content)
    assert mimetype == "application/json" and json.loads(content)["format"] == FORMAT
    assert chain == f"tenant:{tenant_a.tenant.pk}" and checkpoints
    assert "admin@alpha.test" not in alpha.to and "@bravo.test" not in content
    assert checkpoints_mail_daily.apply(kwargs={}).get() == 0  # today's run: yesterday (now) has none...
    assert checkpoints_mail_all(now=tomorrow) == 0  # ...and the same day is never sent twice
    assert len(mail.outbox) == 2


def test_off_by_default(tenant_a, settings):
    settings.AUDIT_CHECKPOINT_EMAIL = False
    audit_seal()
    assert checkpoints_mail_all(now=timezone.now() + timedelta(days=1)) == 0 and mail.outbox == []


def test_scheduled_daily(settings):
    assert settings.CELERY_BEAT_SCHEDULE["compliance-checkpoints-mail"]["task"] == (
        "copilot_admin.compliance.tasks.checkpoints_mail_daily")

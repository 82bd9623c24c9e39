"""Issue 14, words people understand: a limit refusal reads as a sentence with when it resets."""

from datetime import UTC, datetime

from copilot_admin.core.humanize import duration_words, moment_words
from copilot_admin.usage.admission import _refusal_message
from copilot_admin.usage.models import LimitName


def test_a_limit_refusal_reads_as_a_sentence():
    now = datetime(2026, 11, 20, 21, 59, tzinfo=UTC)
    message = _refusal_message(LimitName.USER_REQUESTS_PER_DAY, 6, 7260, now=now)
    assert message == "You have reached today's limit of 6 requests. It resets at 00:00 UTC (in 2 h 01 min)."
    tenant = _refusal_message(LimitName.TENANT_TOKENS_PER_DAY, 200000, 30, now=now)
    assert tenant == "Your organization has reached today's limit of 200,000 tokens. It resets at 21:59 UTC (in 30 s)."
    assert "this minute's limit of 3 requests" in _refusal_message(LimitName.USER_REQUESTS_PER_MINUTE, 3, 20, now=now)


def test_durations_and_moments_read_as_people_say_them():
    from datetime import timedelta

    assert [duration_words(timedelta(seconds=s)) for s in (5, 600, 7281, 3 * 86400 + 3600)] == [
        "5 s", "10 min", "2 h 01 min", "3 days 1 h"]
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert moment_words(now + timedelta(hours=3), now=now) == "2026-11-20 15:00 UTC (in 3 h 00 min)"


def test_feature_badges_and_a_suspension_say_why_in_words(client, tenant_a):
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    from copilot_admin.usage.models import AccessStatus, CopilotAccess

    tenant = tenant_a.tenant
    tenant.copilot_enabled = True
    tenant.feature_switches = {"summarize": True, "time-entry": False, "prioritize": True}
    tenant.save()
    url = reverse("copilot:playground", kwargs={"tenant_slug": "alpha"})
    client.force_login(tenant_a.members["auditor"].user)
    page = client.get(url).content.decode()
    assert "Switched off for Alpha MSP" in page and "Not in your role" in page
    tech = tenant_a.members["tech"]
    until = timezone.now() + timedelta(hours=3)
    CopilotAccess.objects.for_tenant(tenant).create(tenant=tenant, membership=tech, status=AccessStatus.SUSPENDED,
                                                    suspended_until=until)
    client.force_login(tech.user)
    page = client.get(url).content.decode()
    assert f"Your copilot access is suspended until {until:%Y-%m-%d %H:%M} UTC" in page
    assert "Ask an administrator of Alpha MSP" in page


def test_a_plan_without_the_copilot_shows_read_only_switches(client, tenant_a):
    from django.urls import reverse

    tenant = tenant_a.tenant
    tenant.plan, tenant.copilot_enabled = "itsm", False
    tenant.save()
    client.force_login(tenant_a.members["admin"].user)
    url = reverse("copilot:settings", kwargs={"tenant_slug": "alpha"})
    page = client.get(url).content.decode()
    assert "not included in the ITSM plan" in page
    import re

    for name in ("copilot_enabled", "feature_summarize"):
        assert re.search(rf'id="id_{name}"( checked)? disabled>', page), name
    assert not re.search(r'id="id_mfa_required"( checked)? disabled>', page)  # MFA stays live
    assert "Summarize" in page or "summar" in page.lower()
    client.post(url, {"copilot_enabled": "on", "feature_summarize": "on"})
    tenant.refresh_from_db()
    assert tenant.copilot_enabled is False

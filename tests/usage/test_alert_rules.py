"""Fair strikes and warnings: a limit strikes once per window; each warning threshold warns once
per window; per-minute limits warn on the dashboard and in the alert event only; the daily
digest replaces one e-mail per warning; tenant-set thresholds; the near-limit panel reads the
live counters, the per-minute limit included."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from copilot_admin.usage import alerts
from copilot_admin.usage.models import LimitWarning, Notification, Strike
from copilot_admin.usage.selectors import effective_limits
from tests.conftest import api_client_for
from tests.usage.helpers import call, refused, set_policy

LIMITS = "/api/v1/tenants/alpha/limits/"
USAGE = "/api/v1/tenants/alpha/usage/"


@pytest.fixture
def events():
    """Every alert event emitted, as (event, payload), through the subscription webhooks use."""
    seen: list[tuple[str, dict]] = []

    def handler(*, tenant_id, event, payload):
        seen.append((event, payload))

    for name in alerts.ALERT_EVENTS:
        alerts.alert_subscribe(name, handler)
    yield seen
    for name in alerts.ALERT_EVENTS:
        alerts.alert_unsubscribe(name, handler)


def test_a_burst_of_refusals_in_one_window_is_one_strike(tenant_a, clocked):
    clock, _ = clocked
    set_policy(user_requests_per_minute=1, strike_limit=3)
    tech = tenant_a.members["tech"]
    call(tech)
    errors = [refused(tech) for _ in range(30)]
    assert {error.status_code for error in errors} == {429} and min(error.retry_after for error in errors) >= 1
    assert Strike.objects.for_tenant(tenant_a.tenant).count() == 1
    clock.advance(60)  # the next window may strike again
    call(tech)
    refused(tech)
    strikes = Strike.objects.for_tenant(tenant_a.tenant).order_by("window_start")
    assert [(s.limit, s.window_start.minute) for s in strikes] == [
        ("user_requests_per_minute", 17), ("user_requests_per_minute", 18)]


def test_per_minute_limit_warns_the_dashboard_and_the_event_but_sends_no_email(
    tenant_a, clocked, events, django_capture_on_commit_callbacks
):
    set_policy(user_requests_per_minute=10, warning_threshold_percent=80)
    tech = tenant_a.members["tech"]
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            call(tech)
    warnings = LimitWarning.objects.for_tenant(tenant_a.tenant)
    assert sorted(warnings.values_list("limit", "threshold_percent", "emailed")) == [
        ("user_requests_per_minute", 80, False), ("user_requests_per_minute", 95, False)]
    assert mail.outbox == [] and not Notification.objects.for_tenant(tenant_a.tenant).exists()
    warned = [payload for event, payload in events if event == "usage.limit_warning"]
    assert sorted((p["limit"], p["threshold_percent"], p["used"], p["email"]) for p in warned) == [
        ("user_requests_per_minute", 80, 8, "tech@alpha.test"), ("user_requests_per_minute", 95, 10, "tech@alpha.test")]


def test_tenant_sets_its_own_thresholds_each_warns_once(tenant_a, clocked, django_capture_on_commit_callbacks):
    set_policy(user_requests_per_hour=10, warning_threshold_percent=80)
    admin = api_client_for(tenant_a.members["admin"].user)
    changed = admin.patch(LIMITS, {"warning_thresholds": [70, 50, 90]}, format="json")
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert (body["warning_thresholds"], body["warning_threshold_percent"]) == ([50, 70, 90], 50)
    assert admin.patch(LIMITS, {"warning_thresholds": [0]}, format="json").status_code == 400
    assert admin.patch(LIMITS, {"warning_thresholds": [1, 2, 3, 4, 5, 6]}, format="json").status_code == 400
    tech = tenant_a.members["tech"]
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            call(tech)
        refused(tech)
    assert sorted(LimitWarning.objects.for_tenant(tenant_a.tenant).values_list("threshold_percent", "used")) == [
        (50, 5), (70, 7), (90, 9)]
    assert len(mail.outbox) == 6  # three warnings, to the user and the administrator


def test_platform_thresholds_follow_a_tenants_own_lowest(tenant_a, db):
    set_policy(warning_threshold_percent=60)
    assert effective_limits(tenant_a.tenant).warning_thresholds == (60, 80, 95)
    set_policy(warning_threshold_percent=90)
    assert effective_limits(tenant_a.tenant).warning_thresholds == (90, 95)


def test_daily_digest_instead_of_one_email_per_warning(tenant_a, clocked, django_capture_on_commit_callbacks):
    set_policy(user_requests_per_hour=10, warning_threshold_percent=80)
    admin = api_client_for(tenant_a.members["admin"].user)
    assert admin.patch(LIMITS, {"alert_digest": True}, format="json").json()["alert_digest"] is True
    tech = tenant_a.members["tech"]
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            call(tech)
    warnings = LimitWarning.objects.for_tenant(tenant_a.tenant)
    assert warnings.count() == 2 and not warnings.filter(emailed=True).exists()
    assert mail.outbox == []
    today = timezone.now().date()
    with django_capture_on_commit_callbacks(execute=True):
        sent = alerts.warning_digest_send(day=today)
    assert sorted(n.to_email for n in sent) == ["admin@alpha.test", "tech@alpha.test"]
    assert len(mail.outbox) == 2 and all("usage warnings" in m.subject for m in mail.outbox)
    assert "user_requests_per_hour 95%" in mail.outbox[0].body
    assert not warnings.filter(digested_at__isnull=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.warning_digest_send(day=today) == []  # once per day and recipient
    assert alerts.warning_digest_send(day=today - timedelta(days=1)) == []
    assert len(mail.outbox) == 2


def test_near_limit_reads_the_live_counters_per_minute_included(tenant_a, clocked):
    clock, _ = clocked
    set_policy(user_requests_per_minute=10, user_requests_per_hour=100, warning_threshold_percent=80)
    tech = tenant_a.members["tech"]
    for _ in range(9):
        call(tech)
    near = api_client_for(tenant_a.members["admin"].user).get(USAGE).json()["near_limit"]
    assert [(item["email"], item["limit"], item["used"], item["percent"]) for item in near] == [
        ("tech@alpha.test", "user_requests_per_minute", 9, 90)]
    clock.advance(60)  # the minute is over: nobody is near a limit any more
    assert api_client_for(tenant_a.members["admin"].user).get(USAGE).json()["near_limit"] == []


def test_the_limits_page_sets_thresholds_digest_and_auto_suspension_audited(client, tenant_a, db):
    from django.urls import reverse

    from copilot_admin.usage.models import TenantLimitPolicy
    from tests.audit.conftest import object_entries

    set_policy()
    admin = tenant_a.members["admin"]
    client.force_login(admin.user)
    url = reverse("usage:limits", kwargs={"tenant_slug": "alpha"})
    bad = client.post(url, {"warning_thresholds": "60, lots"})
    assert bad.status_code == 200 and "Whole percentages" in bad.content.decode()
    saved = client.post(url, {"warning_thresholds": "90, 60", "alert_digest": "on", "anomaly_auto_suspend": "on"})
    assert saved.status_code == 302, saved.content.decode()[-2000:]
    limits = effective_limits(tenant_a.tenant)
    assert (limits.warning_thresholds, limits.alert_digest, limits.anomaly_auto_suspend) == ((60, 90), True, True)
    page = client.get(url).content.decode()
    assert 'data-testid="warning-thresholds">60%, 90%' in page
    policy = TenantLimitPolicy.objects.for_tenant(tenant_a.tenant).get()
    assert object_entries(policy).last().actor == admin.user


def test_operators_set_the_platform_thresholds_and_the_anomaly_rule(tenant_a, operator):
    from django.urls import reverse

    from copilot_admin.usage.models import PlatformLimitPolicy

    set_policy()
    api = api_client_for(operator)
    url = reverse("api:platform-limits")
    body = api.get(url).json()
    assert (body["warning_thresholds"], body["anomaly_z_threshold"], body["anomaly_baseline_weeks"]) == (
        [80, 95], 6, 4)
    assert api.patch(url, {"anomaly_z_threshold": 1}, format="json").status_code == 400  # below 2
    assert api.patch(url, {"anomaly_baseline_weeks": 13}, format="json").status_code == 400  # past the roll-ups
    assert api.patch(url, {"warning_thresholds": [101]}, format="json").status_code == 400
    done = api.patch(url, {"warning_thresholds": [90, 70], "anomaly_z_threshold": 8}, format="json")
    assert done.status_code == 200, done.content
    policy = PlatformLimitPolicy.objects.get()
    assert (policy.warning_thresholds, policy.anomaly_z_threshold) == ([70, 90], 8)
    # The platform's 80% default threshold stays the lowest; its thresholds above it follow.
    assert effective_limits(tenant_a.tenant).warning_thresholds == (80, 90)

"""Limit policies (platform defaults and maxima, tenant overrides), the `limits/` APIs and pages,
and the per-call check through the copilot's hooks: refusals name the limit and give
Retry-After, warnings go out once per limit and window, Redis down fails closed (or open)."""

import logging
import socket

import pytest
from django.core import mail
from django.urls import reverse

from copilot_admin.access.models import SecurityRole
from copilot_admin.usage import limits as limits_module
from copilot_admin.usage import services as usage
from copilot_admin.usage.admission import user_key
from copilot_admin.usage.counters import LimitsUnavailable, LimitWindow, Window
from copilot_admin.usage.models import LimitWarning, Notification, PlatformLimitPolicy, Strike, TenantLimitPolicy
from copilot_admin.usage.selectors import effective_limits
from copilot_admin.usage.services import tenant_limits_update
from tests.audit.conftest import object_entries
from tests.conftest import api_client_for
from tests.factories import add_member
from tests.usage.helpers import call, refused, set_policy

LIMITS_URL = "/api/v1/tenants/alpha/limits/"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- policy -------------------------------------------------------------------------------------------

def test_effective_limits_follow_defaults_overrides_and_maxima(tenant_a, tenant_b):
    assert effective_limits(tenant_a.tenant).user_requests_per_minute == PlatformLimitPolicy().user_requests_per_minute
    set_policy(user_requests_per_minute=10, max_user_requests_per_minute=50, warning_threshold_percent=75)
    tenant_limits_update(actor=tenant_a.members["admin"], changes={"user_requests_per_minute": 40,
                                                                   "warning_threshold_percent": 90})
    a, b = effective_limits(tenant_a.tenant), effective_limits(tenant_b.tenant)
    assert (a.user_requests_per_minute, a.warning_threshold_percent) == (40, 90)
    assert (b.user_requests_per_minute, b.warning_threshold_percent) == (10, 75)
    set_policy(user_requests_per_minute=10, max_user_requests_per_minute=30)  # lowered maximum caps the override
    assert effective_limits(tenant_a.tenant).user_requests_per_minute == 30
    tenant_limits_update(actor=tenant_a.members["admin"], changes={"user_requests_per_minute": None})
    assert effective_limits(tenant_a.tenant).user_requests_per_minute == 10


def test_limits_api_reads_and_writes_within_the_maxima(tenant_a):
    set_policy(user_tokens_per_day=1000, max_user_tokens_per_day=5000)
    admin = api_client_for(tenant_a.members["admin"].user)
    body = admin.get(LIMITS_URL).json()
    assert body["user_tokens_per_day"] == 1000 and body["overrides"]["user_tokens_per_day"] is None
    assert body["platform_maxima"]["user_tokens_per_day"] == 5000 and "strike_limit" in body["abuse_rules"]
    assert {"user_requests_per_minute", "user_requests_per_hour", "user_requests_per_day", "user_tokens_per_day",
            "tenant_tokens_per_day", "warning_threshold_percent"} <= set(body)

    changed = admin.patch(LIMITS_URL, {"user_tokens_per_day": 4000, "warning_threshold_percent": 50}, format="json")
    assert changed.status_code == 200 and changed.json()["user_tokens_per_day"] == 4000
    assert changed.json()["overrides"]["warning_threshold_percent"] == 50

    above = admin.patch(LIMITS_URL, {"user_tokens_per_day": 5001}, format="json")
    assert above.status_code == 400 and above.json()["error"]["code"] == "limit_out_of_range"
    assert "user_tokens_per_day" in above.json()["error"]["fields"]
    for bad in ({"user_tokens_per_day": 0}, {"warning_threshold_percent": 101}, {"user_tokens_per_dya": 5},
                {"user_tokens_per_day": "many"}):
        response = admin.patch(LIMITS_URL, bad, format="json")
        assert response.status_code == 400 and "error" in response.json(), bad
    assert admin.get(LIMITS_URL).json()["user_tokens_per_day"] == 4000

    reset = admin.patch(LIMITS_URL, {"user_tokens_per_day": None}, format="json")
    assert reset.json()["user_tokens_per_day"] == 1000 and reset.json()["overrides"]["user_tokens_per_day"] is None


def test_limits_are_read_with_usage_view_or_admin_limits(tenant_a):
    auditor = api_client_for(tenant_a.members["auditor"].user)
    assert auditor.get(LIMITS_URL).status_code == 200
    assert auditor.patch(LIMITS_URL, {"user_tokens_per_day": 5}, format="json").status_code == 403
    assert api_client_for(tenant_a.members["tech"].user).get(LIMITS_URL).status_code == 403
    role = SecurityRole.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, name="Limits only", user_type="internal", permissions=["admin.limits"]
    )
    limits_only = api_client_for(add_member(tenant_a.tenant, "Limits only", email="limits@alpha.test").user)
    assert role.pk
    assert limits_only.get(LIMITS_URL).status_code == 200
    assert limits_only.patch(LIMITS_URL, {"user_requests_per_minute": 5}, format="json").status_code == 200
    assert limits_only.get("/api/v1/tenants/alpha/usage/").status_code == 403
    assert limits_only.get("/api/v1/tenants/alpha/abuse-cases/").status_code == 200


def test_limit_changes_are_audited_with_their_actor(tenant_a, client):
    admin = tenant_a.members["admin"]
    api_client_for(admin.user).patch(LIMITS_URL, {"user_requests_per_hour": 99}, format="json")
    policy = TenantLimitPolicy.objects.for_tenant(tenant_a.tenant).get()
    entry = object_entries(policy).last()
    assert entry.actor == admin.user and entry.changes["user_requests_per_hour"][1] == "99"
    assert entry.tenant_id == tenant_a.tenant.pk and entry.action == "limits.create"


def test_limits_page_saves_and_shows_refusals(client, tenant_a):
    set_policy(user_requests_per_day=100, max_user_requests_per_day=500)
    client.force_login(tenant_a.members["admin"].user)
    url = reverse("usage:limits", kwargs={"tenant_slug": "alpha"})
    page = client.get(url)
    assert page.status_code == 200 and "Platform default 100" in page.content.decode()
    saved = client.post(url, {"user_requests_per_day": "300"})
    assert saved.status_code == 302 and effective_limits(tenant_a.tenant).user_requests_per_day == 300
    refused_page = client.post(url, {"user_requests_per_day": "501"})
    assert refused_page.status_code == 200 and effective_limits(tenant_a.tenant).user_requests_per_day == 300
    client.force_login(tenant_a.members["auditor"].user)
    assert client.post(url, {"user_requests_per_day": "1"}).status_code == 403


def test_platform_limits_api_and_page_for_operators_only(client, tenant_a, operator):
    api = api_client_for(operator)
    url = reverse("api:platform-limits")
    assert api.get(url).json()["max_user_tokens_per_day"] == PlatformLimitPolicy().max_user_tokens_per_day
    assert api.patch(url, {"user_requests_per_minute": 7, "strike_limit": 2}, format="json").status_code == 200
    policy = PlatformLimitPolicy.objects.get()
    assert (policy.user_requests_per_minute, policy.strike_limit) == (7, 2)
    too_high = api.patch(url, {"user_requests_per_minute": policy.max_user_requests_per_minute + 1}, format="json")
    assert too_high.status_code == 400 and too_high.json()["error"]["code"] == "limit_out_of_range"
    assert api.patch(url, {"review_near_limit_percent": 0}, format="json").status_code == 400
    assert api.patch(url, {"max_user_requests_per_minute": 2**40}, format="json").status_code == 400  # the column
    assert api_client_for(tenant_a.members["admin"].user).get(url).status_code == 404
    assert api_client_for(None).get(url).status_code == 401
    entry = object_entries(policy).last()
    assert entry.actor == operator and entry.tenant_id is None

    client.force_login(operator)
    page = reverse("platform:limits")
    assert client.get(page).status_code == 200
    form = {name: getattr(policy, name) for name in limits_module.PLATFORM_FIELDS}
    form["user_requests_per_day"] = 123
    assert client.post(page, form).status_code == 302
    assert PlatformLimitPolicy.objects.get().user_requests_per_day == 123
    client.force_login(tenant_a.members["admin"].user)
    assert client.get(page).status_code == 404


# -- the per-call check --------------------------------------------------------------------------------

def test_requests_per_minute_refuses_naming_the_limit_with_retry_after(tenant_a, clocked):
    set_policy(user_requests_per_minute=3)
    tech = tenant_a.members["tech"]
    for _ in range(3):
        call(tech)
    error = refused(tech)
    assert error.status_code == 429 and error.code == "rate_limited"
    assert error.limit == "user_requests_per_minute"
    # The message is a sentence naming the limit (issue 14); `limit` names it for programs.
    assert error.message.startswith("You have reached this minute's limit of 3 requests. It resets at ")
    assert error.retry_after == 55  # the clock stands at :05 of the minute
    assert Strike.objects.for_tenant(tenant_a.tenant).filter(membership=tech, kind="hard_limit").count() == 1
    call(tenant_a.members["admin"])  # another user's own window
    clocked[0].advance(55)
    call(tech)


def test_tokens_are_reserved_then_reconciled_and_the_tenant_limit_is_shared(tenant_a, clocked):
    _, backend = clocked
    set_policy(user_tokens_per_day=10_000, tenant_tokens_per_day=1000)
    tech, admin = tenant_a.members["tech"], tenant_a.members["admin"]
    call(tech, tokens=800, used=(100, 50))
    windows = [LimitWindow(key=user_key(tech.pk, "tokens"), window=Window.DAY, limit=1)]
    assert backend.current(windows=windows)[0].used_after == 150
    call(admin, tokens=800, used=(700, 0))
    with pytest.raises(usage.RateLimitExceeded) as refusal:
        usage.limits_reserve(membership=tech, feature="summarize", estimated_tokens=200)
    assert refusal.value.limit == "tenant_tokens_per_day"
    reservation = usage.limits_reserve(membership=tech, feature="summarize", estimated_tokens=150)
    usage.limits_settle(reservation=reservation, sent=False)
    assert backend.current(windows=windows)[0].used_after == 150


def test_each_threshold_warns_once_per_limit_and_window(tenant_a, clocked, django_capture_on_commit_callbacks):
    """The platform default thresholds, 80% and 95%: each warns (and e-mails) once per window."""
    clock, _ = clocked
    set_policy(user_requests_per_hour=10, warning_threshold_percent=80)
    tech = tenant_a.members["tech"]
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            call(tech)
        refused(tech)
    warnings = LimitWarning.objects.for_tenant(tenant_a.tenant)
    assert sorted(warnings.values_list("threshold_percent", "used")) == [(80, 8), (95, 10)]
    warning = warnings.get(threshold_percent=80)
    assert (warning.limit, warning.limit_value, warning.membership_id, warning.emailed) == (
        "user_requests_per_hour", 10, tech.pk, True)
    to = sorted(message.to[0] for message in mail.outbox)
    assert to == ["admin@alpha.test", "admin@alpha.test", "tech@alpha.test", "tech@alpha.test"]
    message = mail.outbox[0]
    assert "user_requests_per_hour" in message.body and message.alternatives[0][1] == "text/html"
    assert set(Notification.objects.for_tenant(tenant_a.tenant).values_list("status", flat=True)) == {"sent"}

    clock.advance(3600)  # the next hour: a new window, a new warning at 80% (9 calls stay below 95%)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(9):
            call(tech)
    assert warnings.count() == 3 and len(mail.outbox) == 6


def test_tenant_limit_warning_goes_to_the_administrators(tenant_a, clocked, django_capture_on_commit_callbacks):
    set_policy(tenant_tokens_per_day=1000, warning_threshold_percent=50)
    with django_capture_on_commit_callbacks(execute=True):
        call(tenant_a.members["tech"], tokens=300, used=(300, 0))
        call(tenant_a.members["comanaged"], tokens=300, used=(250, 0))
    warning = LimitWarning.objects.for_tenant(tenant_a.tenant).get()
    assert warning.limit == "tenant_tokens_per_day" and warning.membership is None
    assert [message.to for message in mail.outbox] == [["admin@alpha.test"]]


def test_redis_down_fails_closed_and_the_dashboard_keeps_working(tenant_a, settings, client, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    tech = tenant_a.members["tech"]
    with caplog.at_level(logging.ERROR):
        with pytest.raises(LimitsUnavailable) as unavailable:
            usage.limits_reserve(membership=tech, feature="summarize", estimated_tokens=10)
    assert (unavailable.value.status_code, unavailable.value.code) == (503, "limits_unavailable")
    assert "limits_unavailable" in caplog.text
    client.force_login(tenant_a.members["admin"].user)
    assert client.get(reverse("usage:dashboard", kwargs={"tenant_slug": "alpha"})).status_code == 200
    assert api_client_for(tenant_a.members["auditor"].user).get("/api/v1/tenants/alpha/usage/").status_code == 200


def test_fail_open_admits_uncounted_and_logs(tenant_a, settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    settings.USAGE_LIMITS_FAIL_OPEN = True
    with caplog.at_level(logging.WARNING):
        reservation = call(tenant_a.members["tech"], tokens=10)
    assert reservation.windows == () and "without a limit check" in caplog.text

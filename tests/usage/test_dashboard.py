"""Usage dashboards and the `usage/` API: aggregates from the daily roll-ups with date-range
filters, who is near a limit, and query counts that do not grow with history."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from copilot_admin.usage.models import AbuseCase, DailyUsage, HourlyUsage, Notification, UsageOutcome, UsageRecord
from tests.conftest import api_client_for
from tests.factories import add_member
from tests.usage.helpers import call, refused, set_policy

USAGE = "/api/v1/tenants/alpha/usage/"


def add_day(world, membership, *, days_ago=0, feature="summarize", requests=1, tokens=100, rate_limited=0):
    tenant = world.tenant
    DailyUsage.objects.for_tenant(tenant).create(
        tenant=tenant, membership=membership, feature=feature, day=timezone.now().date() - timedelta(days=days_ago),
        requests=requests, prompt_tokens=tokens, completion_tokens=0, rate_limited=rate_limited,
    )


def test_usage_api_aggregates_per_day_feature_and_user(tenant_a, tenant_b, clocked):
    tech, admin = tenant_a.members["tech"], tenant_a.members["admin"]
    call(tech, tokens=120, used=(100, 20))
    call(tech, tokens=50, used=(40, 10), feature="prioritize")
    call(admin, tokens=10, used=(10, 0))
    add_day(tenant_a, tech, days_ago=3, requests=5, tokens=500)
    add_day(tenant_a, tech, days_ago=40, requests=99, tokens=9999)  # outside the default 30 days
    add_day(tenant_b, tenant_b.members["tech"], requests=7, tokens=700)  # another tenant

    api = api_client_for(tenant_a.members["auditor"].user)
    body = api.get(USAGE).json()
    assert body["totals"]["requests"] == 8 and body["totals"]["tokens"] == 680
    assert len(body["per_day"]) == 30 and body["per_day"][-1]["requests"] == 3
    assert body["per_day"][-4] == {**body["per_day"][-4], "requests": 5, "tokens": 500}
    assert {row["feature"]: row["requests"] for row in body["per_feature"]} == {"summarize": 7, "prioritize": 1}
    assert [(row["email"], row["tokens"]) for row in body["per_user"]] == [
        ("tech@alpha.test", 670), ("admin@alpha.test", 10)]
    assert "bravo" not in str(body)

    since = (timezone.now().date() - timedelta(days=45)).isoformat()
    wide = api.get(USAGE, {"since": since}).json()
    assert wide["totals"]["requests"] == 107 and len(wide["per_day"]) == 46
    only_tech = api.get(USAGE, {"user": tech.pk, "feature": "prioritize"}).json()
    assert only_tech["totals"] == {**only_tech["totals"], "requests": 1, "tokens": 50}
    today = timezone.now().date()
    for bad in ({"since": today.isoformat(), "until": (today - timedelta(days=1)).isoformat()},
                {"since": (today - timedelta(days=400)).isoformat()}, {"since": "yesterday"},
                {"feature": "translate"}, {"user": "x"}, {"until": "0001-01-05"}, {"user": 10**20}):
        response = api.get(USAGE, bad)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid", bad


def test_near_limits_and_the_dashboard(client, tenant_a, clocked):
    set_policy(user_requests_per_day=10, user_tokens_per_day=1000, tenant_tokens_per_day=5000,
               warning_threshold_percent=80)
    tech = tenant_a.members["tech"]
    for _ in range(8):
        call(tech, tokens=10, used=(10, 0))
    call(tenant_a.members["admin"], tokens=900, used=(900, 0))
    near = api_client_for(tenant_a.members["admin"].user).get(USAGE).json()["near_limit"]
    assert {(item["email"], item["limit"], item["percent"]) for item in near} == {
        ("tech@alpha.test", "user_requests_per_day", 80), ("admin@alpha.test", "user_tokens_per_day", 90)}
    client.force_login(tenant_a.members["auditor"].user)
    page = client.get(reverse("usage:dashboard", kwargs={"tenant_slug": "alpha"}))
    body = page.content.decode()
    assert page.status_code == 200 and "user_requests_per_day" in body and 'id="usage-chart-data"' in body
    assert "vendor/chartjs/chart.umd.min.js" in body
    # Features by their label in the permission catalogue, not by their URL name.
    assert "<td>Summarize ticket</td>" in body and '"features": ["Summarize ticket"]' in body
    bad_range = client.get(reverse("usage:dashboard", kwargs={"tenant_slug": "alpha"}), {"since": "2026-13-01"})
    assert bad_range.status_code == 200


def test_roll_ups_count_refusals_and_hours(tenant_a, clocked):
    set_policy(user_requests_per_minute=1)
    tech = tenant_a.members["tech"]
    call(tech, tokens=30, used=(20, 10))
    refused(tech)
    day = DailyUsage.objects.for_tenant(tenant_a.tenant).get()
    assert (day.requests, day.rate_limited, day.prompt_tokens, day.completion_tokens) == (1, 1, 20, 10)
    hour = HourlyUsage.objects.for_tenant(tenant_a.tenant).get()
    assert (hour.requests, hour.tokens) == (1, 30)


def _count(fn):
    # Counted warm: the first request after a write refills the cached access decision
    # (core/versioned_cache.py), whose reads do not grow with the rows listed.
    assert fn().status_code == 200
    with CaptureQueriesContext(connection) as context:
        response = fn()
    assert response.status_code == 200
    return len(context.captured_queries)


def _grow(world, count, start):
    tenant = world.tenant
    for index in range(start, start + count):
        member = add_member(tenant, "Technician", email=f"heavy{index}@alpha.test")
        for days_ago in range(3):
            add_day(world, member, days_ago=days_ago, requests=index, tokens=index * 10)
        HourlyUsage.objects.for_tenant(tenant).create(
            tenant=tenant, membership=member, hour=timezone.now().replace(minute=0, second=0, microsecond=0),
            requests=10_000)
        case = AbuseCase.objects.for_tenant(tenant).create(tenant=tenant, membership=member, kind="review",
                                                           summary="pattern")
        Notification.objects.for_tenant(tenant).create(
            tenant=tenant, kind="limit_warning", recipient=member.user, to_email=member.user.email, subject="s",
            reason="r", dedupe_key=f"grow:{index}", case=case)


@pytest.mark.parametrize("kind,name", [
    ("page", "usage:dashboard"), ("page", "usage:abuse_cases"), ("page", "usage:notifications"),
    ("api", "api:usage"), ("api", "api:abuse-cases-list"),
])
def test_usage_pages_run_the_same_queries_for_few_and_many_rows(client, tenant_a, kind, name):
    admin = tenant_a.members["admin"]
    url = reverse(name, kwargs={"tenant_slug": "alpha"})
    if kind == "page":
        client.force_login(admin.user)
        fetch = lambda: client.get(url)  # noqa: E731
    else:
        api = api_client_for(admin.user)
        fetch = lambda: api.get(url, {"status": "open"} if "abuse" in name else {})  # noqa: E731
    _grow(tenant_a, 2, 0)
    small = _count(fetch)
    _grow(tenant_a, 30, 100)
    assert _count(fetch) == small, name


def test_platform_termination_list_query_count_is_flat(client, tenant_a, operator):
    client.force_login(operator)
    url = reverse("platform:abuse_cases")

    def grow(count, start):
        for index in range(start, start + count):
            member = add_member(tenant_a.tenant, "Technician", email=f"t{index}@alpha.test")
            AbuseCase.objects.for_tenant(tenant_a.tenant).create(
                tenant=tenant_a.tenant, membership=member, kind="termination", summary="x")

    grow(1, 0)
    small = _count(lambda: client.get(url))
    grow(20, 10)
    assert _count(lambda: client.get(url)) == small
    assert _count(lambda: api_client_for(operator).get(reverse("api:platform-abuse-cases-list"))) > 0


def test_usage_records_are_also_kept_per_call(tenant_a, clocked):
    call(tenant_a.members["tech"], tokens=5, used=(5, 0), outcome=UsageOutcome.OK)
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).count() == 1


@pytest.mark.parametrize("url,param", [
    ("/api/v1/tenants/alpha/usage/", "since"),
    ("/api/v1/tenants/alpha/usage/", "until"),
    ("/api/v1/tenants/alpha/usage/", "user"),
    ("/api/v1/tenants/alpha/abuse-cases/", "status"),
    ("/api/v1/tenants/alpha/abuse-cases/", "user"),
])
def test_an_empty_query_parameter_is_refused_not_ignored(tenant_a, url, param):
    """`?since=` does not match the schema's date: 400 naming it, not the default range."""
    from tests.conftest import api_client_for
    from tests.cross.test_api_errors import assert_json_error

    error = assert_json_error(api_client_for(tenant_a.members["admin"].user).get(url, {param: ""}), 400)
    assert param in error.get("fields", {}), error

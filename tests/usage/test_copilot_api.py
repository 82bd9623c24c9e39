"""The usage rules as a client of the copilot API meets them: 429 `rate_limited` with
Retry-After naming the limit, strikes that suspend (403 `access_suspended`), reinstatement,
503 `limits_unavailable` when Redis is down (the dashboard still answers), content-filter
refusals as strikes."""

import socket

import pytest
from django.core import mail
from django.urls import reverse

from copilot_admin.usage.models import AbuseCase, DailyUsage, Notification, Strike
from tests.conftest import api_client_for
from tests.copilot.conftest import api_key, sim, simulator_url  # noqa: F401
from tests.regions.fixtures import deployment_factory  # noqa: F401
from tests.usage.helpers import set_policy

URL = "/api/v1/tenants/alpha/copilot/summarize/"


CANARY = "CANARY-7f3e-usage"


def ticket(company):
    return {
        "company": str(company.pk),
        "contact": {"first_name": f"Ana{CANARY}", "last_name": "Ruiz", "type": "customer"},
        "issue": {"summary": f"VPN drops every hour {CANARY}", "description": f"Since Monday {CANARY}.",
                  "conversation": [{"author": "contact", "body": CANARY, "at": "2026-11-20T10:00:00Z",
                                    "internal": False}]},
    }


@pytest.fixture
def us_deployment(deployment_factory, simulator_url, sim):  # noqa: F811
    return deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, deployment="dep-us", priority=1)


@pytest.fixture
def tech_api(tenant_a):
    return api_client_for(tenant_a.members["tech"].user)


def test_rate_limited_with_retry_after_then_suspended_then_reinstated(tenant_a, us_deployment, tech_api, clocked,
                                                                      django_capture_on_commit_callbacks):
    set_policy(user_requests_per_hour=2, strike_limit=2, strike_window_minutes=120, suspension_minutes=15)
    body = ticket(tenant_a.companies[0])
    with django_capture_on_commit_callbacks(execute=True):
        assert [tech_api.post(URL, body, format="json").status_code for _ in range(2)] == [200, 200]
    refused = tech_api.post(URL, body, format="json")
    assert refused.status_code == 429, refused.content
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "this hour's limit of 2 requests" in refused.json()["error"]["message"]
    assert refused["Retry-After"] == "2575"  # 10:17:05 to 11:00:00
    # A burst inside the same window: refused with Retry-After every time, but one strike only.
    for _ in range(5):
        again = tech_api.post(URL, body, format="json")
        assert again.status_code == 429 and again["Retry-After"] == "2575"
    assert Strike.objects.for_tenant(tenant_a.tenant).count() == 1
    clocked[0].advance(3600)  # the next hour's window
    assert [tech_api.post(URL, body, format="json").status_code for _ in range(2)] == [200, 200]
    with django_capture_on_commit_callbacks(execute=True):
        assert tech_api.post(URL, body, format="json").status_code == 429  # the second strike suspends
    suspended = tech_api.post(URL, body, format="json")
    assert suspended.status_code == 403 and suspended.json()["error"]["code"] == "access_suspended"
    assert Strike.objects.for_tenant(tenant_a.tenant).count() == 2
    day = DailyUsage.objects.for_tenant(tenant_a.tenant).get()
    assert (day.requests, day.rate_limited) == (4, 7)

    case = AbuseCase.objects.for_tenant(tenant_a.tenant).get()
    admin = api_client_for(tenant_a.members["admin"].user)
    response = admin.post(f"/api/v1/tenants/alpha/abuse-cases/{case.pk}/reinstate/", {"reason": "Agreed"},
                          format="json")
    assert response.status_code == 200
    clocked[0].advance(3600)
    assert tech_api.post(URL, body, format="json").status_code == 200
    # Warning and suspension e-mails went out, and none carries anything of the tickets.
    assert {"limit_warning", "access_suspended"} <= set(Notification.objects.for_tenant(tenant_a.tenant)
                                                         .values_list("kind", flat=True))
    assert len(mail.outbox) >= 4
    for message in mail.outbox:
        for part in (message.subject, message.body, message.alternatives[0][0]):
            assert CANARY not in part and "VPN" not in part
    for row in Notification.objects.for_tenant(tenant_a.tenant).values_list("subject", "reason"):
        assert CANARY not in str(row)


def test_content_filter_refusals_suspend(tenant_a, us_deployment, tech_api, sim, clocked):  # noqa: F811
    set_policy(strike_limit=2)
    sim.set_behaviour("content_filter_prompt")
    body = ticket(tenant_a.companies[0])
    codes = [tech_api.post(URL, body, format="json").json()["error"]["code"] for _ in range(3)]
    assert codes == ["content_filtered", "content_filtered", "access_suspended"]
    assert DailyUsage.objects.for_tenant(tenant_a.tenant).get().filtered == 2


def test_redis_down_answers_503_and_the_dashboard_200(tenant_a, us_deployment, tech_api, settings, client):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"  # the counters' Redis, and the cache's
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": settings.REDIS_URL}}
    response = tech_api.post(URL, ticket(tenant_a.companies[0]), format="json")
    assert response.status_code == 503 and response.json()["error"]["code"] == "limits_unavailable"
    client.force_login(tenant_a.members["admin"].user)
    for name in ("usage:dashboard", "usage:abuse_cases", "usage:limits", "usage:notifications"):
        assert client.get(reverse(name, kwargs={"tenant_slug": "alpha"})).status_code == 200, name
    settings.USAGE_LIMITS_FAIL_OPEN = True
    assert tech_api.post(URL, ticket(tenant_a.companies[0]), format="json").status_code == 200

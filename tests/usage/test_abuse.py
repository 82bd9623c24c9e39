"""Abuse rules: strikes suspend, repeated suspensions terminate, administrators reinstate
suspensions, operators reinstate terminations, every transition audited with its actor
(the system for automatic ones), and the periodic pattern review."""

from datetime import UTC, datetime, timedelta

import pytest
from auditlog.context import set_actor
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from copilot_admin.directory import services as directory
from copilot_admin.usage import abuse
from copilot_admin.usage import services as usage
from copilot_admin.usage.models import (
    AbuseCase,
    CaseKind,
    CaseResolution,
    CaseStatus,
    CopilotAccess,
    DailyUsage,
    HourlyUsage,
    Notification,
    UsageOutcome,
)
from tests.audit.conftest import object_entries as entries
from tests.conftest import api_client_for
from tests.usage.helpers import call, refused, set_policy

CASES = "/api/v1/tenants/alpha/abuse-cases/"


@pytest.fixture
def strict(clocked):
    """One request per minute; two strikes within an hour suspend for 30 minutes; the second
    suspension within a week terminates."""
    return set_policy(user_requests_per_minute=1, strike_limit=2, strike_window_minutes=60, suspension_minutes=30,
                      suspensions_to_terminate=2, termination_window_days=7)


def strike_out(membership, clock):
    """Two strikes: a limit strikes once per window, so the second refusal comes a minute later."""
    call(membership)
    refused(membership)
    refused(membership)  # the same minute: refused, but no second strike
    clock.advance(60)
    call(membership)
    refused(membership)


def lapse_suspension(membership):
    access = CopilotAccess.objects.for_tenant(membership.tenant).get(membership=membership)
    access.suspended_until = timezone.now() - timedelta(seconds=1)
    access.save()
    AbuseCase.objects.for_tenant(membership.tenant).filter(membership=membership, kind="suspension").update(
        suspended_until=access.suspended_until)


def test_strikes_suspend_and_repeated_suspensions_terminate(tenant_a, strict, clocked,
                                                              django_capture_on_commit_callbacks):
    tech = tenant_a.members["tech"]
    with django_capture_on_commit_callbacks(execute=True):
        strike_out(tech, clocked[0])
    assert usage.copilot_access_state(tech) == "suspended"
    case = AbuseCase.objects.for_tenant(tenant_a.tenant).get()
    assert (case.kind, case.status, case.opened_by, case.details["strikes"]) == ("suspension", "open", None, 2)
    suspended = [m for m in mail.outbox if "suspended" in m.subject.lower()]
    assert sorted(m.to[0] for m in suspended) == ["admin@alpha.test", "tech@alpha.test"]
    assert "strikes within 60 minutes" in suspended[0].body and suspended[0].alternatives

    lapse_suspension(tech)
    assert usage.copilot_access_state(tech) == "active"
    assert abuse.suspensions_expire() == 1
    case.refresh_from_db()
    assert (case.status, case.resolution, case.resolved_by) == ("resolved", "expired", None)

    clocked[0].advance(60)  # a fresh minute window for the counters
    with django_capture_on_commit_callbacks(execute=True):
        strike_out(tech, clocked[0])
    assert usage.copilot_access_state(tech) == "terminated"
    termination = AbuseCase.objects.for_tenant(tenant_a.tenant).get(kind=CaseKind.TERMINATION)
    assert termination.is_open and termination.details["earlier_suspensions"] == 1
    assert any("terminated" in m.subject.lower() for m in mail.outbox)


def test_automatic_transitions_are_the_systems_even_inside_a_users_request(tenant_a, strict, clocked):
    tech, admin = tenant_a.members["tech"], tenant_a.members["admin"]
    company = tenant_a.companies[2]
    with set_actor(actor=tech.user):
        strike_out(tech, clocked[0])
        directory.company_update(actor=admin, company=company, name="Renamed in the same request")
    access = CopilotAccess.objects.for_tenant(tenant_a.tenant).get(membership=tech)
    assert {entry.actor for entry in entries(CopilotAccess, access.pk)} == {None}
    case = AbuseCase.objects.for_tenant(tenant_a.tenant).get()
    assert entries(AbuseCase, case.pk).get().actor is None
    assert entries(type(company), company.pk).last().actor == admin.user  # each service's own actor


def test_content_filter_refusals_are_strikes(tenant_a, strict):
    tech = tenant_a.members["tech"]
    for _ in range(2):
        usage.usage_record_create(membership=tech, feature="summarize", zone="us", outcome=UsageOutcome.FAILED,
                                  request_id=f"cf-{_}", error_code="content_filtered", prompt_tokens=40)
    assert usage.copilot_access_state(tech) == "suspended"
    day = DailyUsage.objects.for_tenant(tenant_a.tenant).get()
    assert (day.requests, day.failed, day.filtered, day.prompt_tokens) == (2, 2, 2, 80)


def test_an_administrator_reinstates_a_suspension_through_the_api(tenant_a, strict, clocked,
                                                                   django_capture_on_commit_callbacks):
    tech, admin = tenant_a.members["tech"], tenant_a.members["admin"]
    strike_out(tech, clocked[0])
    case = AbuseCase.objects.for_tenant(tenant_a.tenant).get()
    api = api_client_for(admin.user)
    listed = api.get(CASES, {"status": "open"}).json()["results"]
    assert [(c["id"], c["email"], c["access_status"], c["opened_by"]) for c in listed] == [
        (case.pk, "tech@alpha.test", "suspended", None)]
    assert api.post(f"{CASES}{case.pk}/reinstate/", {}, format="json").status_code == 400
    auditor = api_client_for(tenant_a.members["auditor"].user)
    assert auditor.get(f"{CASES}{case.pk}/").status_code == 200
    assert auditor.post(f"{CASES}{case.pk}/reinstate/", {"reason": "x"}, format="json").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{CASES}{case.pk}/reinstate/", {"reason": "Load test, agreed with the user"},
                            format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["resolution"], body["resolved_by"], body["access_status"]) == (
        "resolved", "reinstated", "admin@alpha.test", "active")
    assert usage.copilot_access_state(tech) == "active"
    assert entries(AbuseCase, case.pk).last().actor == admin.user
    assert entries(CopilotAccess, CopilotAccess.objects.for_tenant(tenant_a.tenant).get().pk).last().actor == admin.user
    assert any("reinstated" in m.subject.lower() for m in mail.outbox)
    again = api.post(f"{CASES}{case.pk}/reinstate/", {"reason": "twice"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "case_resolved"
    # The strikes before the reinstatement are forgiven: one more strike does not suspend.
    clocked[0].advance(60)
    call(tech)
    refused(tech)
    assert usage.copilot_access_state(tech) == "active"


def test_only_a_platform_operator_reinstates_a_termination(tenant_a, tenant_b, operator, strict, clocked):
    tech, admin = tenant_a.members["tech"], tenant_a.members["admin"]
    strike_out(tech, clocked[0])
    suspension = AbuseCase.objects.for_tenant(tenant_a.tenant).get()
    api = api_client_for(admin.user)
    terminated = api.post(f"{CASES}{suspension.pk}/terminate/", {"reason": "Repeated abuse"}, format="json")
    assert terminated.status_code == 200 and terminated.json()["kind"] == "termination"
    termination = AbuseCase.objects.for_tenant(tenant_a.tenant).get(pk=terminated.json()["id"])
    suspension.refresh_from_db()
    assert (suspension.resolution, suspension.resolved_by) == (CaseResolution.TERMINATED, admin.user)
    assert usage.copilot_access_state(tech) == "terminated"

    refusal = api.post(f"{CASES}{termination.pk}/reinstate/", {"reason": "please"}, format="json")
    assert refusal.status_code == 403 and refusal.json()["error"]["code"] == "operator_required"
    dismissal = api.post(f"{CASES}{termination.pk}/dismiss/", {"reason": "done"}, format="json")
    assert dismissal.status_code == 409
    assert api_client_for(admin.user).get(reverse("api:platform-abuse-cases-list")).status_code == 404

    platform = api_client_for(operator)
    listed = platform.get(reverse("api:platform-abuse-cases-list")).json()["results"]
    assert [(c["id"], c["tenant"]) for c in listed] == [(termination.pk, "alpha")]
    url = reverse("api:platform-abuse-cases-reinstate", kwargs={"pk": termination.pk})
    assert platform.post(url, {}, format="json").status_code == 400
    reinstated = platform.post(url, {"reason": "Reviewed with the MSP"}, format="json")
    assert reinstated.status_code == 200 and reinstated.json()["resolution"] == "reinstated"
    assert usage.copilot_access_state(tech) == "active"
    assert entries(AbuseCase, termination.pk).last().actor == operator
    assert platform.get(reverse("api:platform-abuse-cases-list")).json()["results"] == []


def test_dismiss_keeps_the_access_as_it_is(tenant_a, strict, clocked):
    tech = tenant_a.members["tech"]
    strike_out(tech, clocked[0])
    case = AbuseCase.objects.for_tenant(tenant_a.tenant).get()
    response = api_client_for(tenant_a.members["admin"].user).post(
        f"{CASES}{case.pk}/dismiss/", {"reason": "Known batch job"}, format="json")
    assert response.status_code == 200 and response.json()["resolution"] == "dismissed"
    assert usage.copilot_access_state(tech) == "suspended"


def test_suspension_termination_and_reinstatement_through_the_pages(client, tenant_a, operator, strict, clocked):
    tech, admin = tenant_a.members["tech"], tenant_a.members["admin"]
    strike_out(tech, clocked[0])
    case = AbuseCase.objects.for_tenant(tenant_a.tenant).get()
    client.force_login(admin.user)
    dashboard = client.get(reverse("usage:dashboard", kwargs={"tenant_slug": "alpha"})).content.decode()
    assert "tech@alpha.test" in dashboard and "Suspension" in dashboard
    detail = client.get(reverse("usage:abuse_case", kwargs={"tenant_slug": "alpha", "pk": case.pk}))
    assert detail.status_code == 200 and "?action=reinstate" in detail.content.decode()
    decide = reverse("usage:abuse_case_resolve", kwargs={"tenant_slug": "alpha", "pk": case.pk})
    assert client.get(decide + "?action=terminate").status_code == 200
    assert client.post(decide, {"action": "terminate", "reason": ""}).status_code == 200  # reason required
    assert client.post(decide, {"action": "terminate", "reason": "Abuse confirmed"}).status_code == 302
    assert usage.copilot_access_state(tech) == "terminated"
    termination = AbuseCase.objects.for_tenant(tenant_a.tenant).get(kind=CaseKind.TERMINATION)
    page = client.get(reverse("usage:abuse_case_resolve", kwargs={"tenant_slug": "alpha", "pk": termination.pk}))
    assert "only a platform operator" in page.content.decode()

    client.force_login(operator)
    listing = client.get(reverse("platform:abuse_cases")).content.decode()
    assert "tech@alpha.test" in listing
    reinstate = reverse("platform:abuse_case_reinstate", kwargs={"pk": termination.pk})
    assert client.get(reinstate).status_code == 200
    assert client.post(reinstate, {"reason": "Appeal accepted"}).status_code == 302
    assert usage.copilot_access_state(tech) == "active"
    client.force_login(admin.user)
    assert client.get(reinstate).status_code == 404


def test_pattern_review_opens_each_case_once(tenant_a, db):
    set_policy(user_requests_per_hour=100, user_tokens_per_day=1000, review_near_limit_percent=90,
               review_sustained_hours=8, review_sustained_days=3)
    now = datetime(2026, 11, 20, 18, 30, tzinfo=UTC)
    tech, comanaged, admin = (tenant_a.members[k] for k in ("tech", "comanaged", "admin"))
    tenant = tenant_a.tenant
    for hour in range(1, 10):
        HourlyUsage.objects.for_tenant(tenant).create(tenant=tenant, membership=tech, requests=95,
                                                      hour=now.replace(minute=0) - timedelta(hours=hour))
        HourlyUsage.objects.for_tenant(tenant).create(tenant=tenant, membership=admin, requests=50,
                                                      hour=now.replace(minute=0) - timedelta(hours=hour))
    for day in range(1, 4):
        DailyUsage.objects.for_tenant(tenant).create(tenant=tenant, membership=comanaged, feature="summarize",
                                                     day=now.date() - timedelta(days=day), prompt_tokens=950)
    opened = abuse.usage_patterns_review(now=now)
    assert sorted((c.membership_id, c.details["rule"]) for c in opened) == sorted(
        [(tech.pk, "sustained_hours"), (comanaged.pk, "token_days")])
    assert all(c.kind == "review" and c.opened_by is None for c in opened)
    assert abuse.usage_patterns_review(now=now + timedelta(minutes=20)) == []
    review = AbuseCase.objects.for_tenant(tenant).filter(membership=tech).get()
    api = api_client_for(tenant_a.members["admin"].user)
    nothing = api.post(f"{CASES}{review.pk}/reinstate/", {"reason": "?"}, format="json")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_reinstate"
    assert api.post(f"{CASES}{review.pk}/dismiss/", {"reason": "Month-end"}, format="json").status_code == 200
    assert AbuseCase.objects.for_tenant(tenant).filter(status=CaseStatus.OPEN).count() == 1


def test_notifications_page_lists_every_email(client, tenant_a, strict, clocked, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        strike_out(tenant_a.members["tech"], clocked[0])
    client.force_login(tenant_a.members["auditor"].user)
    page = client.get(reverse("usage:notifications", kwargs={"tenant_slug": "alpha"})).content.decode()
    for notification in Notification.objects.for_tenant(tenant_a.tenant):
        assert notification.to_email in page
    assert "sent" in page and "suspended" in page.lower()

"""Anomalies against a baseline, on a synthetic history of hourly roll-ups: a user at 20x its
usual opens a case with the evidence in plain words; a user at its usual peak does not; the
case changes nothing unless the tenant suspends on anomalies; a dismissal is audited; the
review's queries do not grow with the history; the case page draws the evidence."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from copilot_admin.usage import alerts, anomalies
from copilot_admin.usage import services as usage
from copilot_admin.usage.models import AbuseCase, CopilotAccess, HourlyUsage, TenantLimitPolicy
from tests.audit.conftest import object_entries as entries
from tests.conftest import api_client_for
from tests.factories import add_member
from tests.usage.helpers import set_policy

NOW = datetime(2026, 11, 24, 11, 10, tzinfo=UTC)  # a Tuesday; the review judges 10:00-11:00
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
CASES = "/api/v1/tenants/alpha/abuse-cases/"


def hourly(world, membership, hour, requests, tokens=None):
    HourlyUsage.objects.for_tenant(world.tenant).create(
        tenant=world.tenant, membership=membership, hour=hour, requests=requests,
        tokens=requests * 400 if tokens is None else tokens,
    )


@pytest.fixture
def history(tenant_a):
    """Four weeks of Tuesdays 10:00: the technician makes 9-20 calls, the administrator 22-30,
    two more technicians 5-30; nothing yet for this Tuesday."""
    peers = [add_member(tenant_a.tenant, "Technician", email=f"peer{i}@alpha.test") for i in range(2)]
    weekly = {
        "tech": [12, 15, 9, 20],
        "admin": [25, 30, 28, 22],
        "peer0": [5, 18, 30, 11],
        "peer1": [7, 14, 25, 16],
    }
    members = {"tech": tenant_a.members["tech"], "admin": tenant_a.members["admin"], "peer0": peers[0],
               "peer1": peers[1]}
    for name, counts in weekly.items():
        for weeks_ago, count in zip(range(4, 0, -1), counts, strict=True):
            hourly(tenant_a, members[name], HOUR - timedelta(weeks=weeks_ago), count)
    set_policy()
    return members


def test_a_user_at_twenty_times_its_baseline_opens_a_case_a_user_at_its_usual_peak_does_not(
    tenant_a, history, django_capture_on_commit_callbacks
):
    seen = []

    def handler(*, tenant_id, event, payload):
        seen.append((event, payload["email"], payload["kind"]))

    alerts.alert_subscribe(alerts.CASE_OPENED, handler)
    try:
        hourly(tenant_a, history["tech"], HOUR, 14 * 20)  # 20x the median of 13.5
        hourly(tenant_a, history["admin"], HOUR, 30)  # its usual peak
        with django_capture_on_commit_callbacks(execute=True):
            opened = anomalies.anomalies_review(now=NOW)
    finally:
        alerts.alert_unsubscribe(alerts.CASE_OPENED, handler)
    assert [case.membership_id for case in opened] == [history["tech"].pk]
    case = opened[0]
    assert (case.kind, case.status, case.opened_by, case.suspended_until) == ("anomaly", "open", None, None)
    assert case.summary == (
        "280 calls and 112000 tokens in the hour from 2026-11-24 10:00 UTC; this user's usual for "
        "Tuesday 10:00 UTC is 9-20 calls (last 4 weeks); the tenant's technicians 7-30"
    )
    assert case.details["anomalous"] == ["calls", "tokens"] and case.details["scores"]["calls"]["own"] > 6
    assert case.details["chart"]["calls"] == [12, 15, 9, 20, 280]
    assert usage.copilot_access_state(history["tech"]) == "active"  # no automatic suspension by default
    assert seen == [("abuse.case_opened", "tech@alpha.test", "anomaly")]
    assert [m.to[0] for m in mail.outbox] == ["admin@alpha.test"]
    assert entries(AbuseCase, case.pk).get().actor is None
    # Judged once: the next run (or a second worker) opens nothing more.
    assert anomalies.anomalies_review(now=NOW) == []


def test_below_the_minimum_or_within_the_peers_is_no_anomaly(tenant_a, history):
    hourly(tenant_a, history["tech"], HOUR, 19)  # far above its own 9-20? no: below the 20-call minimum
    hourly(tenant_a, history["peer0"], HOUR, 40)  # above its own, but within its peers' reach
    assert anomalies.anomalies_review(now=NOW) == []


def test_the_tenant_can_suspend_on_anomalies(tenant_a, history, django_capture_on_commit_callbacks):
    TenantLimitPolicy.objects.for_tenant(tenant_a.tenant).create(tenant=tenant_a.tenant, anomaly_auto_suspend=True)
    hourly(tenant_a, history["tech"], HOUR, 300)
    with django_capture_on_commit_callbacks(execute=True):
        (case,) = anomalies.anomalies_review(now=NOW)
    access = CopilotAccess.objects.for_tenant(tenant_a.tenant).get(membership=history["tech"])
    # Suspended from the review's moment for the platform's suspension period (60 minutes).
    assert (access.status, access.suspended_until) == ("suspended", NOW + timedelta(minutes=60))
    assert case.suspended_until == access.suspended_until
    assert any("suspended" in m.subject.lower() for m in mail.outbox)


def test_dismissal_with_a_reason_is_audited_and_the_page_draws_the_evidence(client, tenant_a, history):
    hourly(tenant_a, history["tech"], HOUR, 300)
    (case,) = anomalies.anomalies_review(now=NOW)
    client.force_login(tenant_a.members["admin"].user)
    page = client.get(reverse("usage:abuse_case", kwargs={"tenant_slug": "alpha", "pk": case.pk}))
    body = page.content.decode()
    assert 'id="case-evidence-data" type="application/json"' in body and "abuse_case_chart.js" in body
    assert "<script>" not in body  # data by json_script, code from a static file (strict CSP)

    api = api_client_for(tenant_a.members["admin"].user)
    assert api.post(f"{CASES}{case.pk}/dismiss/", {}, format="json").status_code == 400  # a reason is required
    done = api.post(f"{CASES}{case.pk}/dismiss/", {"reason": "Month-end billing run"}, format="json")
    assert done.status_code == 200, done.content
    assert (done.json()["resolution"], done.json()["resolution_reason"]) == ("dismissed", "Month-end billing run")
    entry = entries(AbuseCase, case.pk).last()
    assert entry.actor == tenant_a.members["admin"].user
    assert entry.changes_dict["resolution_reason"][1] == "Month-end billing run"
    tech_api = api_client_for(tenant_a.members["tech"].user)
    assert tech_api.post(f"{CASES}{case.pk}/dismiss/", {"reason": "x"}, format="json").status_code == 403


def test_the_review_reads_a_fixed_number_of_queries_whatever_the_history(tenant_a, history):
    hourly(tenant_a, history["admin"], HOUR, 30)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert anomalies.anomalies_review(now=NOW) == []
        return len(captured)

    small = queries()
    # Ten more weeks of every hour for every member: ten times the history.
    rows = [
        HourlyUsage(tenant=tenant_a.tenant, membership=member, hour=HOUR - timedelta(hours=h), requests=3, tokens=900)
        for member in history.values() for h in range(1, 24 * 7 * 10) if h % (24 * 7)
    ]
    HourlyUsage.objects.for_tenant(tenant_a.tenant).bulk_create(rows)
    assert HourlyUsage.objects.for_tenant(tenant_a.tenant).count() > 6000
    assert queries() == small


def test_robust_score_floors_keep_a_flat_history_from_exploding():
    flat = anomalies.Baseline.of([0, 0, 0, 0], unit="calls")
    assert (flat.median, flat.scale) == (0, 1.0)
    busy = anomalies.Baseline.of([100, 100, 100, 100], unit="calls")
    assert busy.scale == 10.0  # 10% of the median when the history does not vary
    assert round(anomalies.Baseline.of([9, 12, 15, 20], unit="calls").score(280), 1) > 6

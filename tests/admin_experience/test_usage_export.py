"""Issue 14: usage per client company, user, feature and day with a date range, streamed as
CSV or JSON Lines at `usage/export/` (DESIGN.md contract), metadata only."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from django.urls import reverse

from copilot_admin.usage.models import UsageRecord
from tests.conftest import api_client_for

DAY = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def record(world, member, company, *, outcome="ok", error_code="", tokens=(100, 20), at=DAY, n=[0]):
    n[0] += 1
    return UsageRecord.objects.for_tenant(world.tenant).create(
        tenant=world.tenant, user_id=member.user_id, membership=member, company=company, feature="summarize",
        zone="us", outcome=outcome, error_code=error_code, request_id=f"req-{n[0]}",
        prompt_tokens=tokens[0], completion_tokens=tokens[1], created_at=at,
    )


def export(user, **params):
    response = api_client_for(user).get(reverse("api:usage-export", kwargs={"tenant_slug": "alpha"}), params)
    body = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    return response, body


def test_export_by_company_counts_calls_tokens_and_refusals(tenant_a, tenant_b):
    tech, one, two = tenant_a.members["tech"], tenant_a.companies[0], tenant_a.companies[1]
    record(tenant_a, tech, one)
    record(tenant_a, tech, one, tokens=(50, 5))
    record(tenant_a, tech, two)
    record(tenant_a, tech, one, outcome="refused", error_code="rate_limited", tokens=(0, 0))
    record(tenant_a, tech, two, at=DAY + timedelta(days=5))  # outside the range
    record(tenant_b, tenant_b.members["tech"], tenant_b.companies[0])  # another tenant
    response, body = export(tenant_a.members["auditor"].user, format="csv", group_by="company",
                            since="2026-11-20", until="2026-11-21")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body)))
    by_company = {row["company_name"]: row for row in rows}
    assert set(by_company) == {one.name, two.name}
    first = by_company[one.name]
    assert (first["requests"], first["refused"], first["rate_limited"], first["tokens"]) == ("2", "1", "1", "175")
    assert by_company[two.name]["requests"] == "1"
    assert "Bravo" not in body


def test_export_jsonl_by_day_user_and_feature(tenant_a):
    tech, admin = tenant_a.members["tech"], tenant_a.members["admin"]
    record(tenant_a, tech, tenant_a.companies[0])
    record(tenant_a, admin, tenant_a.companies[0], at=DAY + timedelta(days=1))
    params = {"format": "jsonl", "since": "2026-11-20", "until": "2026-11-21"}
    response, body = export(admin.user, group_by="day", **params)
    assert response["Content-Type"].startswith("application/x-ndjson")
    days = [json.loads(line) for line in body.splitlines()]
    assert [(d["day"], d["requests"]) for d in days] == [("2026-11-20", 1), ("2026-11-21", 1)]
    _, body = export(admin.user, group_by="user", **params)
    assert {json.loads(line)["email"] for line in body.splitlines()} == {tech.user.email, admin.user.email}
    _, body = export(admin.user, group_by="feature", **params)
    assert [json.loads(line)["feature"] for line in body.splitlines()] == ["summarize"]
    # Metadata only: no request ids, no content fields.
    assert "req-" not in body


def test_export_validates_its_parameters_and_permission(tenant_a):
    admin = tenant_a.members["admin"].user
    for params, field in [({"format": "xml"}, "format"), ({"group_by": "ticket"}, "group_by"),
                          ({"since": "2026-11-22", "until": "2026-11-20"}, "since"), ({"since": "yesterday"}, "since")]:
        response, body = export(admin, **params)
        assert response.status_code == 400 and field in json.loads(body)["error"]["fields"], params
    denied, body = export(tenant_a.members["tech"].user)
    assert denied.status_code == 403 and json.loads(body)["error"]["code"] == "permission_denied"
    empty, body = export(admin, since="2020-01-01", until="2020-01-02")
    assert empty.status_code == 200 and body.splitlines() == [
        "day,requests,refused,rate_limited,failed,filtered,prompt_tokens,completion_tokens,tokens"]


def test_a_copilot_call_records_its_company(tenant_a):
    from copilot_admin.usage import services as usage_services

    tech, company = tenant_a.members["tech"], tenant_a.companies[1]
    usage_services.usage_record_create(membership=tech, feature="summarize", zone="us", outcome="ok",
                                       request_id="with-company", company_id=company.pk)
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).get(request_id="with-company").company == company


def test_dashboard_shows_usage_per_company_the_export_links_and_why_it_is_empty(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    url = reverse("usage:dashboard", kwargs={"tenant_slug": "alpha"})
    empty = client.get(url).content.decode()
    assert "No copilot calls between" in empty and 'data-testid="usage-empty"' in empty
    assert "/api/v1/tenants/alpha/usage/export/?format=csv&amp;group_by=company" in empty
    tenant_a.tenant.plan = "itsm"
    tenant_a.tenant.save()
    assert "The copilot is not included in the ITSM plan" in client.get(url).content.decode()
    from copilot_admin.usage import services as usage_services

    usage_services.usage_record_create(membership=tenant_a.members["tech"], feature="summarize", zone="us",
                                       outcome="ok", request_id="dash-1", prompt_tokens=100, completion_tokens=20,
                                       company_id=tenant_a.companies[1].pk)
    page = client.get(url).content.decode()
    assert 'data-testid="usage-empty"' not in page
    table = page.split('data-testid="company-usage-table"')[1].split("</table>")[0]
    assert tenant_a.companies[1].name in table and ">120<" in table

"""The access review rebuilt from the audit log: a role change, a permission change, a
deactivation, a company rename and a co-managed scope change each read as they were at the
moment asked; JSON, streamed CSV and the page; bad moments are 400."""

import csv
import io

import pytest
from django.utils import timezone

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.services import role_create, role_update
from copilot_admin.compliance.review import access_review
from copilot_admin.directory.services import company_update, membership_update
from tests.conftest import api_client_for
from tests.factories import add_member

API = "/api/v1/tenants/alpha/access-review/"


def row(rows, email):
    return next(r for r in rows if r.email == email)


def role_named(world, name):
    return SecurityRole.objects.for_tenant(world.tenant).get(name=name)


def test_a_role_change_reads_the_old_role_before_and_the_new_one_after(tenant_a):
    admin, tech = tenant_a.members["admin"], tenant_a.members["tech"]
    before = timezone.now()
    membership_update(actor=admin, membership=tech, role=role_named(tenant_a, "Compliance Auditor"))
    after = timezone.now()
    old, new = row(access_review(tenant=tenant_a.tenant, at=before), "tech@alpha.test"), row(
        access_review(tenant=tenant_a.tenant, at=after), "tech@alpha.test")
    assert old.role == "Technician" and new.role == "Compliance Auditor"
    assert old.permissions == sorted(role_named(tenant_a, "Technician").permissions)
    assert "audit.view" in new.permissions and "audit.view" not in old.permissions


def test_role_permissions_and_name_are_those_at_the_moment(tenant_a):
    admin, tech = tenant_a.members["admin"], tenant_a.members["tech"]
    role = role_create(actor=admin, name="Night shift", user_type="internal", permissions=["usage.view"])
    membership_update(actor=admin, membership=tech, role=role)
    before = timezone.now()
    role_update(actor=admin, role=role, name="Night desk", permissions=["usage.view", "audit.view"])
    old = row(access_review(tenant=tenant_a.tenant, at=before), "tech@alpha.test")
    new = row(access_review(tenant=tenant_a.tenant, at=timezone.now()), "tech@alpha.test")
    assert (old.role, old.permissions) == ("Night shift", ["usage.view"])
    assert (new.role, new.permissions) == ("Night desk", ["audit.view", "usage.view"])


def test_deactivation_company_rename_and_scope_change(tenant_a):
    admin, comanaged = tenant_a.members["admin"], tenant_a.members["comanaged"]
    one, two = tenant_a.companies[0], tenant_a.companies[1]
    before = timezone.now()
    company_update(actor=admin, company=one, name="Alpha Renamed One")
    membership_update(actor=admin, membership=comanaged, companies=[one, two], is_active=False)
    old = row(access_review(tenant=tenant_a.tenant, at=before), "comanaged@alpha.test")
    new = row(access_review(tenant=tenant_a.tenant, at=timezone.now()), "comanaged@alpha.test")
    assert (old.companies, old.is_active) == (["Alpha MSP Client One"], True)
    assert (new.companies, new.is_active) == (["Alpha MSP Client Two", "Alpha Renamed One"], False)


def test_members_added_later_and_pending_invitations_are_not_listed(tenant_a):
    before = timezone.now()
    add_member(tenant_a.tenant, "Technician", email="late@alpha.test")
    add_member(tenant_a.tenant, "Technician", email="pending@alpha.test", accepted=False)
    then = {r.email for r in access_review(tenant=tenant_a.tenant, at=before)}
    now = {r.email for r in access_review(tenant=tenant_a.tenant, at=timezone.now())}
    assert "late@alpha.test" not in then and "late@alpha.test" in now and "pending@alpha.test" not in now
    assert "admin@alpha.test" in then


def test_api_json_shape_and_other_tenant_absent(tenant_a, tenant_b):
    client = api_client_for(tenant_a.members["auditor"].user)
    response = client.get(API, {"at": timezone.now().isoformat()})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"at", "results"}
    assert set(body["results"][0]) == {"email", "user_type", "role", "permissions", "companies", "is_active",
                                       "copilot_access"}
    emails = {r["email"] for r in body["results"]}
    assert "tech@alpha.test" in emails and not any(e.endswith("@bravo.test") for e in emails)
    assert all(r["copilot_access"] == "active" for r in body["results"])


def test_api_at_defaults_to_now_and_csv_streams_the_same_rows(tenant_a):
    client = api_client_for(tenant_a.members["auditor"].user)
    rows = client.get(API).json()["results"]
    response = client.get(API, {"format": "csv"})
    assert response.status_code == 200 and response.streaming and response["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert lines[0] == ["email", "user_type", "role", "permissions", "companies", "is_active", "copilot_access"]
    assert [line[0] for line in lines[1:]] == [r["email"] for r in rows]


@pytest.mark.parametrize("query", [{"at": "yesterday"}, {"at": "2026-13-01"}, {"format": "xml"}, {"at": "9" * 50}])
def test_bad_input_is_400(tenant_a, query):
    response = api_client_for(tenant_a.members["auditor"].user).get(API, query)
    assert response.status_code == 400 and "error" in response.json()


def test_page_shows_the_review_with_downloads(client, tenant_a):
    client.force_login(tenant_a.members["auditor"].user)
    body = client.get("/t/alpha/compliance/access-review/", {"at": timezone.now().isoformat()}).content.decode()
    assert "tech@alpha.test" in body and "Technician" in body and "format=csv" in body
    bad = client.get("/t/alpha/compliance/access-review/", {"at": "nonsense"})
    assert bad.status_code == 200 and "invalid-feedback" in bad.content.decode()


def test_query_count_does_not_grow_with_members_or_changes(tenant_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api_client_for(tenant_a.members["auditor"].user)
    at = timezone.now()

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(API, {"at": at.isoformat()}).status_code == 200
        return len(ctx.captured_queries)

    add_member(tenant_a.tenant, "Co-managed Help Desk", email="grow0@alpha.test", companies=tenant_a.companies[:2])
    count()  # the first request after a change warms the access cache (token, membership, role)
    small = count()
    for i in range(1, 30):
        add_member(tenant_a.tenant, "Co-managed Help Desk", email=f"grow{i}@alpha.test",
                   companies=tenant_a.companies[:2])
    count()  # adding members changed the tenant's access version: warm the cache again
    assert count() == small

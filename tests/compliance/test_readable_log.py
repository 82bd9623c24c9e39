"""The log an auditor can read: changes with names (not ids), choices by label, booleans as
on/off, many-to-many changes by name, one sentence per entry; the entry's API and page; the
filters as choices with counts; the auditor's read-only view of the directory; the roles x
permissions matrix; the platform auditor's export across tenants."""

import importlib
import json
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.urls import reverse

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm, all_permissions
from copilot_admin.audit.chain import entry_hash
from copilot_admin.audit.models import AuditEntry
from copilot_admin.audit.readable import entry_sentence
from copilot_admin.audit.services import entry_append
from tenants.models import Membership
from tests.audit.conftest import entries
from tests.conftest import api_client_for
from tests.cross.routes import TENANT_API, TENANT_PAGES, holds

DETAIL_KEYS = {"id", "at", "actor", "action", "object_type", "object_id", "object_repr", "changes", "remote_addr",
               "correlation_id", "sealed", "hash", "prev_hash"}


def _role(world, name):
    return SecurityRole.objects.for_tenant(world.tenant).get(name=name)


@pytest.fixture
def admin_api(tenant_a):
    return api_client_for(tenant_a.members["admin"].user)


@pytest.fixture
def auditor_api(tenant_a):
    return api_client_for(tenant_a.members["auditor"].user)


# -- readable entries -------------------------------------------------------------------------

def test_role_change_reads_role_names_in_the_entry_and_its_api(tenant_a, admin_api, auditor_api):
    tech = tenant_a.members["tech"]
    auditor_role = _role(tenant_a, "Compliance Auditor")
    technician = _role(tenant_a, "Technician")
    response = admin_api.patch(f"/api/v1/tenants/alpha/users/{tech.pk}/", {"role": auditor_role.pk}, format="json")
    assert response.status_code == 200, response.content
    entry = entries(tenant_a, action="membership.update", object_id=str(tech.pk)).get()
    assert entry.changes == {"role": ["Technician", "Compliance Auditor"]}
    assert entry.metadata["raw"] == {"role": [str(technician.pk), str(auditor_role.pk)]}  # the raw ids beside
    body = auditor_api.get(f"/api/v1/tenants/alpha/audit/{entry.pk}/").json()
    assert set(body) == DETAIL_KEYS
    assert body["changes"] == {"role": ["Technician", "Compliance Auditor"]}
    assert body["actor"] == "admin@alpha.test" and body["object_repr"] == "tech@alpha.test"
    assert body["sealed"] is True and body["hash"] == entry.hash and body["prev_hash"] == entry.prev_hash
    # The name at the time of the change: renaming the role later does not rewrite history.
    auditor_role.name = "Renamed Auditor"
    auditor_role.save()
    assert auditor_api.get(f"/api/v1/tenants/alpha/audit/{entry.pk}/").json()["changes"]["role"][1] == (
        "Compliance Auditor")
    assert entry_sentence(entry) == (
        "admin@alpha.test changed user tech@alpha.test: role Technician → Compliance Auditor")


def test_company_m2m_change_reads_company_names(tenant_a, admin_api, client):
    comanaged = tenant_a.members["comanaged"]
    one, two = tenant_a.companies[0], tenant_a.companies[1]
    response = admin_api.patch(f"/api/v1/tenants/alpha/users/{comanaged.pk}/", {"companies": [two.pk]}, format="json")
    assert response.status_code == 200, response.content
    changed = entries(tenant_a, action="membership.update", object_id=str(comanaged.pk),
                      actor_id=tenant_a.members["admin"].user.pk)
    assert {json.dumps(e.changes, sort_keys=True) for e in changed} == {
        json.dumps({"companies": {"type": "m2m", "operation": "delete", "objects": [one.name]}}, sort_keys=True),
        json.dumps({"companies": {"type": "m2m", "operation": "add", "objects": [two.name]}}, sort_keys=True),
    }
    client.force_login(tenant_a.members["auditor"].user)
    for entry in changed:
        body = client.get(reverse("audit:entry", kwargs={"tenant_slug": "alpha", "pk": entry.pk})).content.decode()
        assert (one.name in body or two.name in body) and ".None" not in body


def test_booleans_read_on_off_and_choices_by_label(tenant_a, admin_api):
    company = tenant_a.companies[2]
    admin_api.patch(f"/api/v1/tenants/alpha/companies/{company.pk}/", {"co_managed": True}, format="json")
    assert entries(tenant_a, action="company.update", object_id=str(company.pk)).get().changes == {
        "co_managed": ["off", "on"]}
    created = admin_api.post("/api/v1/tenants/alpha/roles/", {
        "name": "Partner desk", "user_type": "co_managed", "permissions": ["copilot.summarize"]}, format="json")
    assert created.status_code == 201, created.content
    entry = entries(tenant_a, action="role.create", object_id=str(created.json()["id"])).get()
    assert entry.changes["user_type"] == [None, "Co-managed"] and entry.changes["is_active"] == [None, "on"]
    assert entry.metadata["raw"]["user_type"] == ["None", "co_managed"]


def test_cloned_role_says_what_it_was_cloned_from(tenant_a, admin_api, auditor_api):
    technician = _role(tenant_a, "Technician")
    response = admin_api.post("/api/v1/tenants/alpha/roles/", {
        "name": "Technician (no time entry)", "clone_from": technician.pk,
        "permissions": ["copilot.summarize", "copilot.prioritize"]}, format="json")
    assert response.status_code == 201, response.content
    entry = entries(tenant_a, action="role.clone").get()
    assert entry.metadata["cloned_from"] == "Technician" and entry.metadata["cloned_from_id"] == technician.pk
    assert entry_sentence(entry) == "admin@alpha.test cloned Technician as Technician (no time entry)"
    listed = auditor_api.get("/api/v1/tenants/alpha/audit/", {"action": "role.clone"}).json()["results"]
    assert [row["summary"] for row in listed] == ["admin@alpha.test cloned Technician as Technician (no time entry)"]


def test_older_entries_read_with_todays_names(tenant_a, auditor_api, client):
    """An entry recorded before names were kept (raw ids, "True", a manager's repr)."""
    tech = tenant_a.members["tech"]
    technician, auditor_role = _role(tenant_a, "Technician"), _role(tenant_a, "Compliance Auditor")
    old = entry_append(
        tenant_id=tenant_a.tenant.pk, actor_id=None, actor_email="", actor_type="system", action="membership.update",
        object_type="membership", object_id=str(tech.pk), object_repr="Membership object (3)",
        changes={"role": [str(technician.pk), str(auditor_role.pk)], "is_active": ["True", "False"],
                 "user_type": ["internal", "co_managed"], "companies": ["tenants.ClientCompany.None", "None"]},
        content_type_id=ContentType.objects.get_for_model(Membership).pk,
    )
    body = auditor_api.get(f"/api/v1/tenants/alpha/audit/{old.pk}/").json()
    assert body["changes"] == {"role": ["Technician", "Compliance Auditor"], "is_active": ["on", "off"],
                               "user_type": ["Internal", "Co-managed"], "companies": [None, None]}
    client.force_login(tenant_a.members["auditor"].user)
    page = client.get(reverse("audit:entry", kwargs={"tenant_slug": "alpha", "pk": old.pk})).content.decode()
    assert "Compliance Auditor" in page and "named today" in page and ".None" not in page


def test_old_ids_never_resolve_to_another_tenants_names(tenant_a, tenant_b, auditor_api):
    foreign_role = _role(tenant_b, "Technician")
    foreign_role.name = "Bravo secret role"
    foreign_role.save()
    old = entry_append(
        tenant_id=tenant_a.tenant.pk, actor_id=None, actor_email="", actor_type="system", action="membership.update",
        object_type="membership", object_id="1", changes={"role": ["1", str(foreign_role.pk)]},
        content_type_id=ContentType.objects.get_for_model(Membership).pk,
    )
    body = auditor_api.get(f"/api/v1/tenants/alpha/audit/{old.pk}/").json()
    assert body["changes"]["role"][1] == str(foreign_role.pk) and "Bravo" not in json.dumps(body)


# -- entry detail: API and page ------------------------------------------------------------------

def test_entry_detail_foreign_or_missing_is_404(tenant_a, tenant_b, auditor_api):
    foreign = entries(tenant_b).first()
    for entry_id in (foreign.pk, 999999999):
        response = auditor_api.get(f"/api/v1/tenants/alpha/audit/{entry_id}/")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api_client_for(tenant_a.members["tech"].user).get(
        f"/api/v1/tenants/alpha/audit/{entries(tenant_a).first().pk}/").status_code == 403


def test_entry_page_links_object_history_and_same_request(tenant_a, client):
    client.force_login(tenant_a.members["admin"].user)
    company = tenant_a.companies[0]
    client.post(reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": company.pk}),
                {"name": "Renamed Client", "co_managed": "on"}, HTTP_X_REQUEST_ID="req-12345678")
    entry = entries(tenant_a, action="company.update").get()
    client.force_login(tenant_a.members["auditor"].user)
    response = client.get(reverse("audit:entry", kwargs={"tenant_slug": "alpha", "pk": entry.pk}))
    body = response.content.decode()
    assert response.status_code == 200
    assert "admin@alpha.test changed company Renamed Client: name Alpha MSP Client One → Renamed Client" in body
    assert f'href="/t/alpha/audit/?company={company.pk}"' in body  # the object's history
    assert reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": company.pk}) in body  # the object
    assert entry.correlation_id and f"?correlation_id={entry.correlation_id}" in body
    same = client.get("/t/alpha/audit/", {"correlation_id": entry.correlation_id}).context["entries"]
    assert entry.pk in {e.pk for e in same} and all(e.correlation_id == entry.correlation_id for e in same)


# -- filters ------------------------------------------------------------------------------------

def test_filters_offer_choices_with_counts_and_subjects(tenant_a, admin_api, client):
    company = tenant_a.companies[0]
    admin_api.patch(f"/api/v1/tenants/alpha/companies/{company.pk}/", {"name": "Renamed"}, format="json")
    admin_api.patch(f"/api/v1/tenants/alpha/companies/{company.pk}/", {"name": "Renamed again"}, format="json")
    client.force_login(tenant_a.members["auditor"].user)
    response = client.get("/t/alpha/audit/")
    form = response.context["filter_form"]
    action_choices = dict(form.fields["action"].widget.choices)
    # Offered by name (issue 14, words people understand); the values stay the codes.
    assert action_choices["company.update"] == "Company changed (2)"
    assert action_choices["company"].startswith("Company: every action (")
    assert dict(form.fields["object_type"].widget.choices)["company"].startswith("Company (")
    assert "Success (" in dict(form.fields["outcome"].widget.choices)["success"]
    assert dict(form.fields["company"].widget.choices)[str(company.pk)] == "Renamed again"
    assert dict(form.fields["role"].widget.choices)[str(_role(tenant_a, "Technician").pk)] == "Technician"
    by_company = client.get("/t/alpha/audit/", {"company": company.pk}).context["entries"]
    assert {(e.object_type, e.object_id) for e in by_company} == {("company", str(company.pk))} and len(by_company) == 3
    # A prefix from the choices finds what free text did not.
    assert {e.action for e in client.get("/t/alpha/audit/", {"action": "company"}).context["entries"]} == {
        "company.create", "company.update"}
    client.force_login(tenant_a.members["tech"].user)
    client.post(reverse("directory:user_create", kwargs={"tenant_slug": "alpha"}), {})  # refused: recorded as denied
    client.force_login(tenant_a.members["auditor"].user)
    denied = client.get("/t/alpha/audit/", {"outcome": "denied"}).context["entries"]
    assert denied and {e.outcome for e in denied} == {"denied"}


def test_changes_to_this_user_include_its_membership_and_account(tenant_a, admin_api, auditor_api):
    tech = tenant_a.members["tech"]
    admin_api.patch(f"/api/v1/tenants/alpha/users/{tech.pk}/", {"is_active": False}, format="json")
    rows = auditor_api.get("/api/v1/tenants/alpha/audit/", {"user": tech.pk}).json()["results"]
    assert rows and {(row["object_type"], row["object_id"]) for row in rows} == {("membership", str(tech.pk))}
    bad = auditor_api.get("/api/v1/tenants/alpha/audit/", {"user": "x"})
    assert bad.status_code == 400


# -- the auditor reads the directory -----------------------------------------------------------

def test_auditor_reads_users_roles_and_companies_pages_and_api(tenant_a, auditor_api, client):
    tech = tenant_a.members["tech"]
    users = auditor_api.get("/api/v1/tenants/alpha/users/").json()
    assert "tech@alpha.test" in json.dumps(users)
    assert auditor_api.get(f"/api/v1/tenants/alpha/users/{tech.pk}/").json()["email"] == "tech@alpha.test"
    roles = auditor_api.get("/api/v1/tenants/alpha/roles/").json()
    admin_role = next(r for r in roles.get("results", roles) if r["name"] == "Tenant Administrator")
    assert set(admin_role["permissions"]) == all_permissions()  # the full permission matrix
    assert auditor_api.get("/api/v1/tenants/alpha/companies/").status_code == 200
    client.force_login(tenant_a.members["auditor"].user)
    for url in (reverse("directory:users", kwargs={"tenant_slug": "alpha"}),
                reverse("directory:user_edit", kwargs={"tenant_slug": "alpha", "pk": tech.pk}),
                reverse("access:roles", kwargs={"tenant_slug": "alpha"}),
                reverse("access:role_edit", kwargs={"tenant_slug": "alpha", "pk": _role(tenant_a, "Technician").pk}),
                reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": tenant_a.companies[0].pk})):
        response = client.get(url)
        body = response.content.decode()
        assert response.status_code == 200, url
        assert 'data-testid="read-only"' in body or "View" in body, url
        assert 'type="submit">Save' not in body and "Invite user" not in body, url
    user_url = reverse("directory:user_edit", kwargs={"tenant_slug": "alpha", "pk": tech.pk})
    user_page = client.get(user_url).content.decode()
    assert f'href="/t/alpha/audit/?user={tech.pk}"' in user_page  # its audit history


def _readable_writes():
    """The auditor's readable routes, written to: every other method, and POST to the pages."""
    pages = [name for name, perm in TENANT_PAGES.items() if isinstance(perm, tuple)]
    api = [(name, method) for (name, method), perm in TENANT_API.items()
           if method != "get" and any(n == name and isinstance(p, tuple) for (n, _), p in TENANT_API.items())]
    return pages, api


def test_every_write_by_the_auditor_stays_403_and_is_recorded(tenant_a, client, auditor_api):
    auditor = tenant_a.members["auditor"]
    pages, api_routes = _readable_writes()
    assert {"directory:users", "access:role_matrix"} <= set(pages)
    assert ("api:users-detail", "patch") in api_routes and ("api:roles-detail", "delete") in api_routes
    kinds = {"membership": tenant_a.members["tech"].pk, "company": tenant_a.companies[0].pk,
             "role": _role(tenant_a, "Technician").pk}
    from tests.cross.routes import OBJECT_KIND

    def url(name):
        kwargs = {"tenant_slug": "alpha"}
        if name in OBJECT_KIND:
            kwargs["pk"] = kinds[OBJECT_KIND[name]]
        return reverse(name, kwargs=kwargs)

    client.force_login(auditor.user)
    before = entries(tenant_a).exclude(action="access.denied").count()
    for name in pages:
        assert client.post(url(name), {"name": "x", "is_active": ""}).status_code == 403, name
    for name, method in api_routes:
        response = getattr(auditor_api, method)(url(name), {"name": "x", "is_active": False}, format="json")
        assert response.status_code == 403, (name, method)
    assert entries(tenant_a).exclude(action="access.denied").count() == before  # nothing changed
    assert entries(tenant_a, action="access.denied", actor_id=auditor.user.pk).count() == len(pages) + len(api_routes)


def test_technician_still_cannot_read_the_directory(tenant_a):
    tech = api_client_for(tenant_a.members["tech"].user)
    assert tech.get("/api/v1/tenants/alpha/users/").status_code == 403
    assert tech.get("/api/v1/tenants/alpha/roles/").status_code == 403
    assert not holds(tenant_a.members["tech"], TENANT_PAGES["directory:users"])


def test_existing_auditor_roles_gain_directory_view_by_migration(tenant_a):
    role = _role(tenant_a, "Compliance Auditor")
    role.permissions = sorted(set(role.permissions) - {Perm.DIRECTORY_VIEW})
    role.save()
    migration = importlib.import_module("copilot_admin.access.migrations.0003_auditors_read_the_directory")
    migration.grant_directory_view(apps, None)
    role.refresh_from_db()
    assert Perm.DIRECTORY_VIEW in role.permissions
    recorded = entries(tenant_a, action="role.update", object_id=str(role.pk)).last()
    assert Perm.DIRECTORY_VIEW in recorded.changes["permissions"][1] and recorded.actor_type == "system"
    migration.grant_directory_view(apps, None)  # idempotent
    assert entries(tenant_a, action="role.update", object_id=str(role.pk)).count() == 1


# -- the roles x permissions matrix ----------------------------------------------------------------

@pytest.mark.parametrize("who,status", [("admin", 200), ("auditor", 200), ("tech", 403), ("comanaged", 403)])
def test_permission_matrix_page(tenant_a, client, who, status):
    client.force_login(tenant_a.members[who].user)
    response = client.get(reverse("access:role_matrix", kwargs={"tenant_slug": "alpha"}))
    assert response.status_code == status
    if status == 200:
        body = response.content.decode()
        roles = SecurityRole.objects.for_tenant(tenant_a.tenant)
        assert all(role.name in body for role in roles)
        rows = response.context["rows"]
        assert {row["code"] for row in rows} == all_permissions()
        names = [role.name for role in response.context["roles"]]
        auditor_col = names.index("Compliance Auditor")
        granted = {row["code"] for row in rows if row["cells"][auditor_col]}
        assert granted == set(_role(tenant_a, "Compliance Auditor").permissions)


# -- the platform auditor's export across tenants ----------------------------------------------------

@pytest.fixture
def platform_auditor(db):
    from tests.factories import UserFactory

    user = UserFactory(email="compliance@platform.test")
    call_command("audit_platform_auditor", "grant", user.email, stdout=StringIO())
    return user


def test_platform_auditor_exports_across_tenants_streamed_and_recorded(client, tenant_a, tenant_b, platform_auditor):
    client.force_login(platform_auditor)
    response = client.get(reverse("platform_audit:export"), {"format": "jsonl"})
    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert {line["tenant"] for line in lines} >= {"alpha", "bravo"}
    for line in lines:
        assert len(line["hash"]) == 64 and entry_hash(line) == line["hash"]  # verifiable offline
        assert "summary" in line and "changes_readable" in line
    recorded = AuditEntry.objects.platform_chain().filter(action="audit.platform_export", actor=platform_auditor)
    assert recorded.count() == 1 and recorded.get().metadata["format"] == "jsonl"
    one = client.get(reverse("platform_audit:export"), {"format": "csv", "tenant": "bravo"})
    rows = b"".join(one.streaming_content).decode().splitlines()
    assert rows[0].startswith("seq,created_at_utc,tenant_id,tenant,") and all(",bravo," in row for row in rows[1:])
    assert entries(tenant_b, action="audit.platform_export").count() == 1  # bravo's auditors see it
    assert client.get(reverse("platform_audit:export"), {"format": "xml"}).status_code == 400


@pytest.mark.parametrize("who", ["admin", "auditor"])
def test_tenant_members_cannot_export_across_tenants(client, tenant_a, who):
    client.force_login(tenant_a.members[who].user)
    assert client.get(reverse("platform_audit:export"), {"format": "csv"}).status_code == 404


def test_tenant_export_carries_readable_values_beside_the_raw_ones(tenant_a, auditor_api):
    tech = tenant_a.members["tech"]
    technician, auditor_role = _role(tenant_a, "Technician"), _role(tenant_a, "Compliance Auditor")
    old = entry_append(
        tenant_id=tenant_a.tenant.pk, actor_id=None, actor_email="", actor_type="system", action="membership.update",
        object_type="membership", object_id=str(tech.pk), object_repr=tech.user.email,
        changes={"role": [str(technician.pk), str(auditor_role.pk)]},
        content_type_id=ContentType.objects.get_for_model(Membership).pk,
    )
    response = auditor_api.get("/api/v1/tenants/alpha/audit/export/", {"format": "jsonl"})
    lines = {line["id"] if "id" in line else line["seq"]: line
             for line in map(json.loads, b"".join(response.streaming_content).decode().splitlines())}
    line = next(line for line in lines.values() if line["object_id"] == str(tech.pk) and line["changes"] == old.changes)
    assert line["changes"] == {"role": [str(technician.pk), str(auditor_role.pk)]}  # raw, as hashed
    assert line["changes_readable"] == {"role": ["Technician", "Compliance Auditor"]}
    assert line["summary"] == "system changed user tech@alpha.test: role Technician → Compliance Auditor"
    assert entry_hash(line) == line["hash"] and line["tenant"] == "alpha"
    csv_rows = b"".join(auditor_api.get("/api/v1/tenants/alpha/audit/export/", {"format": "csv"})
                        .streaming_content).decode()
    assert "system changed user tech@alpha.test: role Technician → Compliance Auditor" in csv_rows

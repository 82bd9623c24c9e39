"""Users (memberships), invitations, co-managed binding, client companies, copilot settings."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from tenants.models import ClientCompany, Membership, Plan, User
from tests.conftest import api_client_for
from tests.factories import role_named


def users_url():
    return reverse("api:users-list", kwargs={"tenant_slug": "alpha"})


def test_invite_creates_user_and_sends_single_use_link(client, tenant_a, django_capture_on_commit_callbacks):
    api = api_client_for(tenant_a.members["admin"].user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(users_url(), {
            "email": "New.Person@Alpha.test", "full_name": "New Person", "user_type": "internal",
            "role": role_named(tenant_a.tenant, "Technician").pk,
        }, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["email"] == "new.person@alpha.test"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.person@alpha.test"]
    assert mail.outbox[0].alternatives, "HTML part missing"
    link = re.search(r"http://\S+/password/set/\S+/", mail.outbox[0].body).group(0)
    path = link.split("8000", 1)[1]
    page = client.get(path, follow=True)
    assert page.status_code == 200 and "Set your password" in page.content.decode()
    form_url = page.redirect_chain[-1][0] if page.redirect_chain else path
    done = client.post(form_url, {"new_password1": "a-long-new-pass-123", "new_password2": "a-long-new-pass-123"})
    assert done.status_code == 302
    assert User.objects.get(email="new.person@alpha.test").check_password("a-long-new-pass-123")
    # The link works once.
    again = client.get(path, follow=True)
    assert "no longer valid" in again.content.decode()


def test_existing_account_gets_an_invitation_to_accept_not_a_membership(tenant_a, tenant_b,
                                                                        django_capture_on_commit_callbacks):
    api = api_client_for(tenant_a.members["admin"].user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(users_url(), {"email": "tech@bravo.test", "user_type": "internal",
                                          "role": role_named(tenant_a.tenant, "Technician").pk}, format="json")
    assert response.status_code == 201 and response.json()["status"] == "invited"
    assert len(mail.outbox) == 1 and "/invitations/" in mail.outbox[0].body and "/password/set/" not in mail.outbox[0].body
    assert not Membership.objects.for_tenant(tenant_a.tenant).get(user__email="tech@bravo.test").is_accepted


def test_duplicate_member_is_refused(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.post(users_url(), {"email": "tech@alpha.test", "user_type": "internal",
                                      "role": role_named(tenant_a.tenant, "Technician").pk}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "duplicate"


def test_co_managed_user_needs_co_managed_companies(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    role = role_named(tenant_a.tenant, "Co-managed Help Desk").pk
    none = api.post(users_url(), {"email": "cm1@alpha.test", "user_type": "co_managed", "role": role}, format="json")
    assert none.status_code == 400 and "companies" in none.json()["error"]["fields"]
    not_enabled = tenant_a.companies[2]
    off = api.post(users_url(), {"email": "cm2@alpha.test", "user_type": "co_managed", "role": role,
                                 "companies": [not_enabled.pk]}, format="json")
    assert off.json()["error"]["code"] == "company_not_co_managed"
    ok = api.post(users_url(), {"email": "cm3@alpha.test", "user_type": "co_managed", "role": role,
                                "companies": [tenant_a.companies[1].pk]}, format="json")
    assert ok.status_code == 201 and ok.json()["companies"] == [tenant_a.companies[1].pk]
    assert not User.objects.filter(email__in=["cm1@alpha.test", "cm2@alpha.test"]).exists()


def test_internal_user_cannot_be_bound_to_companies(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.post(users_url(), {"email": "in@alpha.test", "user_type": "internal",
                                      "role": role_named(tenant_a.tenant, "Technician").pk,
                                      "companies": [tenant_a.companies[0].pk]}, format="json")
    assert response.status_code == 400


def test_co_managed_user_lists_only_its_companies(tenant_a):
    member = tenant_a.members["comanaged"]
    for client_fn in (api_client_for(member.user),):
        body = client_fn.get(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"})).json()
        assert [c["id"] for c in body["results"]] == [tenant_a.companies[0].pk]
        other = client_fn.get(reverse("api:companies-detail", kwargs={"tenant_slug": "alpha", "pk": tenant_a.companies[1].pk}))
        assert other.status_code == 404
    internal = api_client_for(tenant_a.members["tech"].user).get(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"})).json()
    assert len(internal["results"]) == 3


def test_co_managed_scope_ends_when_co_management_is_disabled(tenant_a):
    admin_api = api_client_for(tenant_a.members["admin"].user)
    company = tenant_a.companies[0]
    assert admin_api.patch(reverse("api:companies-detail", kwargs={"tenant_slug": "alpha", "pk": company.pk}),
                           {"co_managed": False}, format="json").status_code == 200
    body = api_client_for(tenant_a.members["comanaged"].user).get(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"})).json()
    assert body["results"] == []


def test_user_list_filters(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    url = reverse("directory:users", kwargs={"tenant_slug": "alpha"})
    def rows(**params):
        page = client.get(url, params).content.decode()
        return set(re.findall(r"<td>([a-z]+@alpha\.test)</td>", page))

    assert rows() == {f"{k}@alpha.test" for k in ("admin", "tech", "comanaged", "auditor")}
    assert rows(user_type="co_managed") == {"comanaged@alpha.test"}
    assert rows(role=role_named(tenant_a.tenant, "Compliance Auditor").pk) == {"auditor@alpha.test"}
    Membership.objects.for_tenant(tenant_a.tenant).filter(pk=tenant_a.members["tech"].pk).update(is_active=False)
    assert rows(is_active="0") == {"tech@alpha.test"}
    assert rows(q="AUDIT") == {"auditor@alpha.test"}
    api = api_client_for(tenant_a.members["admin"].user).get(users_url(), {"is_active": "false"}).json()
    assert [u["email"] for u in api["results"]] == ["tech@alpha.test"]


def test_deactivated_member_loses_tenant_access(tenant_a):
    admin_api = api_client_for(tenant_a.members["admin"].user)
    tech = tenant_a.members["tech"]
    url = reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tech.pk})
    assert admin_api.patch(url, {"is_active": False}, format="json").json()["is_active"] is False
    assert api_client_for(tech.user).get(reverse("api:settings", kwargs={"tenant_slug": "alpha"})).status_code == 404


def test_admin_cannot_deactivate_or_demote_self(tenant_a):
    admin = tenant_a.members["admin"]
    url = reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": admin.pk})
    response = api_client_for(admin.user).patch(url, {"is_active": False}, format="json")
    assert response.status_code == 409


def test_user_pages_create_and_edit(client, tenant_a, django_capture_on_commit_callbacks):
    client.force_login(tenant_a.members["admin"].user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("directory:user_create", kwargs={"tenant_slug": "alpha"}), {
            "email": "page@alpha.test", "full_name": "Page User", "user_type": "co_managed",
            "role": role_named(tenant_a.tenant, "Co-managed Help Desk").pk, "companies": [tenant_a.companies[1].pk],
        })
    assert response.status_code == 302
    member = Membership.objects.for_tenant(tenant_a.tenant).get(user__email="page@alpha.test")
    assert list(member.companies.all()) == [tenant_a.companies[1]]
    bad = client.post(reverse("directory:user_edit", kwargs={"tenant_slug": "alpha", "pk": member.pk}), {
        "role": role_named(tenant_a.tenant, "Technician").pk,
        "companies": [tenant_a.companies[1].pk], "is_active": "on",
    })
    assert bad.status_code == 200 and "is for internal users" in bad.content.decode()


def test_company_pages(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    response = client.post(reverse("directory:company_create", kwargs={"tenant_slug": "alpha"}), {"name": "Acme", "co_managed": "on"})
    assert response.status_code == 302
    company = ClientCompany.objects.for_tenant(tenant_a.tenant).get(name="Acme")
    assert company.co_managed
    response = client.post(reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": company.pk}), {"name": "Acme Corp"})
    company.refresh_from_db()
    assert response.status_code == 302 and company.name == "Acme Corp" and not company.co_managed
    dup = client.post(reverse("directory:company_create", kwargs={"tenant_slug": "alpha"}), {"name": "acme corp"})
    assert dup.status_code == 200 and "exists" in dup.content.decode()


def test_copilot_settings_api_and_page(client, tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    url = reverse("api:settings", kwargs={"tenant_slug": "alpha"})
    body = api.patch(url, {"copilot_enabled": False, "features": {"prioritize": False}}, format="json").json()
    assert body == {"copilot_enabled": False, "plan": "ultimate", "plan_includes_copilot": True, "zone": "us",
                    "features": {"summarize": True, "time-entry": True, "prioritize": False}, "mfa_required": False}
    bad = api.patch(url, {"features": {"teleport": True}}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    read_only = api.patch(url, {"plan": "essentials", "zone": "eu"}, format="json")
    assert read_only.status_code == 200 and read_only.json()["plan"] == "ultimate" and read_only.json()["zone"] == "us"
    client.force_login(tenant_a.members["admin"].user)
    page_url = reverse("copilot:settings", kwargs={"tenant_slug": "alpha"})
    assert client.post(page_url, {"copilot_enabled": "on", "feature_summarize": "on"}).status_code == 302
    tenant_a.tenant.refresh_from_db()
    assert tenant_a.tenant.copilot_enabled
    assert tenant_a.tenant.feature_switches == {"summarize": True, "time-entry": False, "prioritize": False}
    page = client.get(page_url).content.decode()
    assert "included for all users" in page and "United States" in page


@pytest.mark.parametrize("plan,entitled", [(Plan.ULTIMATE, True), (Plan.OPS, True), (Plan.ITSM_COPILOT, True),
                                           (Plan.ITSM, False), (Plan.ESSENTIALS, False)])
def test_copilot_entitlement_comes_from_the_plan(tenant_a, plan, entitled):
    tenant_a.tenant.plan = plan
    tenant_a.tenant.save()
    body = api_client_for(tenant_a.members["tech"].user).get(reverse("api:settings", kwargs={"tenant_slug": "alpha"})).json()
    assert body["plan_includes_copilot"] is entitled


def test_member_permissions_do_not_depend_on_plan(tenant_a):
    """Entitlement is tenant-wide: no per-user purchase can add or remove it."""
    from copilot_admin.access.policy import permissions_of

    before = permissions_of(tenant_a.members["tech"])
    tenant_a.tenant.plan = Plan.ESSENTIALS
    tenant_a.tenant.save()
    assert permissions_of(tenant_a.members["tech"]) == before
    assert "copilot.summarize" in before


def test_object_pages_link_to_their_audit_history(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    company = tenant_a.companies[0]
    client.post(reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": company.pk}),
                {"name": "Renamed Client", "co_managed": "on"})
    page = client.get(reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": company.pk})).content.decode()
    link = re.search(r'href="(/t/alpha/audit/\?object_type=company&amp;object_id=\d+)"', page).group(1).replace("&amp;", "&")
    history = client.get(link).content.decode()
    assert "Renamed Client" in history
    # Without audit.view the link is not offered.
    from copilot_admin.access.models import SecurityRole
    from tests.factories import add_member

    SecurityRole.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, name="Company admin", permissions=["admin.companies"])
    client.force_login(add_member(tenant_a.tenant, "Company admin", email="companies@alpha.test").user)
    page = client.get(reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": company.pk})).content.decode()
    assert "object_type=company" not in page

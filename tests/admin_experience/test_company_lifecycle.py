"""Issue 14: client companies are deactivated, reactivated and deleted after a confirmation page
of their own saying what will follow (co-managed users who lose it from their scope, usage
records kept); a company in use cannot be deleted (page: why; API: 409 `company_in_use`); a
deactivated company is out of every member's copilot scope, and the API reads and filters
`is_active`."""

import pytest
from django.urls import reverse

from copilot_admin.core.errors import ApplicationError, Conflict, PermissionRefused
from copilot_admin.directory import services
from copilot_admin.usage.models import UsageRecord
from tenants.models import ClientCompany
from tests.audit.conftest import entries
from tests.conftest import ROLES, api_client_for
from tests.factories import role_named


def url(name, pk):
    return reverse(f"directory:{name}", kwargs={"tenant_slug": "alpha", "pk": pk})


def api_url(pk=None):
    if pk is None:
        return reverse("api:companies-list", kwargs={"tenant_slug": "alpha"})
    return reverse("api:companies-detail", kwargs={"tenant_slug": "alpha", "pk": pk})


def company(world, pk) -> ClientCompany:
    return ClientCompany.objects.for_tenant(world.tenant).get(pk=pk)


def usage_record(world, company):
    return UsageRecord.objects.for_tenant(world.tenant).create(
        tenant=world.tenant, company=company, feature="summarize", zone="us", outcome="ok",
        request_id=f"lifecycle-{company.pk}",
    )


def test_deactivation_says_who_loses_scope_and_that_usage_stays(client, tenant_a):
    one = tenant_a.companies[0]  # the co-managed user's only company
    client.force_login(tenant_a.members["admin"].user)
    body = client.get(url("company_deactivate", one.pk)).content.decode()
    assert f"Deactivate {one.name}?" in body
    assert "internal users included" in body and "calls naming it are refused" in body
    assert "1 co-managed user loses Alpha MSP Client One from their scope; 1 of them co-manage no other active" in body
    assert "Its usage records and audit history are kept" in body
    assert company(tenant_a, one.pk).is_active  # the page changes nothing

    assert client.post(url("company_deactivate", one.pk)).status_code == 302
    assert not company(tenant_a, one.pk).is_active
    entry = entries(tenant_a, action="company.update", object_id=str(one.pk)).get()
    assert entry.changes == {"is_active": ["on", "off"]} and entry.actor_email == "admin@alpha.test"
    listing = client.get(reverse("directory:companies", kwargs={"tenant_slug": "alpha"})).content.decode()
    assert "deactivated</span>" in listing and url("company_reactivate", one.pk) in listing
    # Nothing more to deactivate; it can be reactivated after its own confirmation.
    assert client.get(url("company_deactivate", one.pk)).status_code == 404
    assert "1 co-managed user bound to it gets it back" in client.get(
        url("company_reactivate", one.pk)).content.decode()
    assert client.post(url("company_reactivate", one.pk)).status_code == 302
    assert company(tenant_a, one.pk).is_active
    assert client.get(url("company_reactivate", one.pk)).status_code == 404


def test_a_company_in_use_is_not_deleted_and_the_page_says_why(client, tenant_a):
    one, three = tenant_a.companies[0], tenant_a.companies[2]
    usage_record(tenant_a, three)
    client.force_login(tenant_a.members["admin"].user)
    body = client.get(url("company_delete", one.pk)).content.decode()
    assert "1 co-managed user is bound to it; move them to other companies first." in body
    assert 'class="btn btn-danger" type="submit"' not in body
    body = client.get(url("company_delete", three.pk)).content.decode()
    assert "It has history (1 usage records) that is kept: deactivate the company instead." in body
    client.post(url("company_delete", three.pk))
    assert company(tenant_a, three.pk)  # still there
    with pytest.raises(Conflict) as refused:
        services.company_delete(actor=tenant_a.members["admin"], company=three)
    assert refused.value.code == "company_in_use"


def test_a_free_company_is_deleted_after_confirmation(client, tenant_a):
    two = tenant_a.companies[1]
    client.force_login(tenant_a.members["admin"].user)
    body = client.get(url("company_delete", two.pk)).content.decode()
    assert f"Delete {two.name}?" in body and "removed for good" in body
    assert ClientCompany.objects.for_tenant(tenant_a.tenant).filter(pk=two.pk).exists()
    assert client.post(url("company_delete", two.pk)).status_code == 302
    assert not ClientCompany.objects.for_tenant(tenant_a.tenant).filter(pk=two.pk).exists()
    assert entries(tenant_a, object_id=str(two.pk), action="company.delete").count() == 1


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_members_without_admin_companies_may_not(client, tenant_a, role):
    member = tenant_a.members[role]
    two = tenant_a.companies[1]
    client.force_login(member.user)
    for name in ("company_deactivate", "company_delete"):
        assert client.get(url(name, two.pk)).status_code == 403
        assert client.post(url(name, two.pk)).status_code == 403
    api = api_client_for(member.user)
    assert api.patch(api_url(two.pk), {"is_active": False}, format="json").status_code in (403, 404)
    assert api.delete(api_url(two.pk)).status_code in (403, 404)
    assert company(tenant_a, two.pk).is_active
    with pytest.raises(PermissionRefused):
        services.company_update(actor=member, company=two, is_active=False)
    with pytest.raises(PermissionRefused):
        services.company_delete(actor=member, company=two)


def test_foreign_companies_are_not_found(client, tenant_a, tenant_b):
    foreign = tenant_b.companies[1]
    client.force_login(tenant_a.members["admin"].user)
    for name in ("company_deactivate", "company_reactivate", "company_delete"):
        assert client.get(url(name, foreign.pk)).status_code == 404
        assert client.post(url(name, foreign.pk)).status_code == 404
    api = api_client_for(tenant_a.members["admin"].user)
    assert api.delete(api_url(foreign.pk)).status_code == 404
    assert api.patch(api_url(foreign.pk), {"is_active": False}, format="json").status_code == 404
    assert company(tenant_b, foreign.pk).is_active


def test_api_reads_filters_and_writes_is_active(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    two = tenant_a.companies[1]
    response = api.patch(api_url(two.pk), {"is_active": False}, format="json")
    assert response.status_code == 200 and response.json()["is_active"] is False
    inactive = api.get(api_url(), {"is_active": "false"}).json()
    inactive = inactive.get("results", inactive)
    assert [c["id"] for c in inactive] == [two.pk]
    active = api.get(api_url(), {"is_active": "true"}).json()
    assert two.pk not in [c["id"] for c in active.get("results", active)]
    bad = api.get(api_url(), {"is_active": "maybe"})
    assert bad.status_code == 400 and "error" in bad.json()
    bad = api.patch(api_url(two.pk), {"is_active": "nope"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    # Co-managed users list the companies of their scope, a deactivated one marked.
    comanaged = api_client_for(tenant_a.members["comanaged"].user)
    services.company_update(actor=tenant_a.members["admin"], company=tenant_a.companies[0], is_active=False)
    listed = comanaged.get(api_url()).json()
    assert [(c["name"], c["is_active"]) for c in listed.get("results", listed)] == [("Alpha MSP Client One", False)]


def test_api_delete_204_or_409_company_in_use(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.delete(api_url(tenant_a.companies[0].pk))
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "company_in_use", "message": (
        "1 co-managed user is bound to it; move them to other companies first.")}}
    usage_record(tenant_a, tenant_a.companies[2])
    response = api.delete(api_url(tenant_a.companies[2].pk))
    assert response.status_code == 409 and "usage records" in response.json()["error"]["message"]
    assert api.delete(api_url(tenant_a.companies[1].pk)).status_code == 204
    assert not ClientCompany.objects.for_tenant(tenant_a.tenant).filter(pk=tenant_a.companies[1].pk).exists()


def test_a_deactivated_company_is_not_newly_assigned_but_stays_where_it_is(tenant_a):
    admin, comanaged = tenant_a.members["admin"], tenant_a.members["comanaged"]
    one, two = tenant_a.companies[0], tenant_a.companies[1]
    services.company_update(actor=admin, company=two, is_active=False)
    with pytest.raises(ApplicationError) as refused:
        services.membership_update(actor=admin, membership=comanaged, companies=[one, two])
    assert refused.value.code == "company_inactive"
    with pytest.raises(ApplicationError):
        services.membership_create(actor=admin, tenant=tenant_a.tenant, email="new@alpha.test",
                                   user_type="co_managed", role=role_named(tenant_a.tenant, "Co-managed Help Desk"),
                                   companies=[two])
    # Bound already: a later change of the user (its role) keeps it.
    services.company_update(actor=admin, company=one, is_active=False)
    services.membership_update(actor=admin, membership=comanaged, role=comanaged.role)
    assert list(comanaged.companies.all()) == [one]


def test_the_playground_offers_only_active_companies(client, tenant_a):
    services.company_update(actor=tenant_a.members["admin"], company=tenant_a.companies[1], is_active=False)
    client.force_login(tenant_a.members["tech"].user)
    page = client.get(reverse("copilot:playground", kwargs={"tenant_slug": "alpha"})).content.decode()
    assert "Alpha MSP Client One" in page and "Alpha MSP Client Two" not in page

"""Tenant isolation: every tenant route, as every role of tenant A, against tenant B's objects
and tenant B's URLs answers 404/403 and never carries tenant B's data."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.conftest import ROLES, api_client_for
from tests.cross.routes import OBJECT_KIND, TENANT_API, TENANT_PAGES, object_pk
from tests.factories import role_named

B_MARKERS = ("Bravo MSP", "@bravo.test")


def _b_object_pk(tenant_b, kind):
    built_in = {
        "membership": tenant_b.members["tech"].pk,
        "company": tenant_b.companies[0].pk,
        "role": role_named(tenant_b.tenant, "Technician").pk,
    }
    return built_in[kind] if kind in built_in else object_pk(kind, tenant_b)


def _assert_no_b_data(response):
    body = response.content.decode()
    for marker in B_MARKERS:
        assert marker not in body, (response.request["PATH_INFO"], marker)


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("name", sorted(OBJECT_KIND))
def test_foreign_object_in_own_tenant_url_is_not_found(client, tenant_a, tenant_b, name, role):
    user = tenant_a.members[role].user
    url = reverse(name, kwargs={"tenant_slug": "alpha", "pk": _b_object_pk(tenant_b, OBJECT_KIND[name])})
    if name.startswith("api:"):
        api = api_client_for(user)
        for (route, method), _ in TENANT_API.items():
            if route != name:
                continue
            response = getattr(api, method)(url, {"name": "stolen", "is_active": False}, format="json")
            assert response.status_code in (403, 404), (name, method, role, response.status_code)
            _assert_no_b_data(response)
    else:
        client.force_login(user)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (403, 404), (name, method, role, response.status_code)
            _assert_no_b_data(response)


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("name", sorted(TENANT_PAGES))
def test_foreign_tenant_pages_are_not_found(client, tenant_a, tenant_b, name, role):
    client.force_login(tenant_a.members[role].user)
    kwargs = {"tenant_slug": "bravo"}
    if name in OBJECT_KIND:
        kwargs["pk"] = _b_object_pk(tenant_b, OBJECT_KIND[name])
    for method in ("get", "post"):
        response = getattr(client, method)(reverse(name, kwargs=kwargs))
        assert response.status_code == 404, (name, role, method)
        _assert_no_b_data(response)


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("name,method", sorted(TENANT_API))
def test_foreign_tenant_api_is_not_found(tenant_a, tenant_b, name, method, role):
    kwargs = {"tenant_slug": "bravo"}
    if name in OBJECT_KIND:
        kwargs["pk"] = _b_object_pk(tenant_b, OBJECT_KIND[name])
    response = getattr(api_client_for(tenant_a.members[role].user), method)(reverse(name, kwargs=kwargs), {}, format="json")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


@pytest.mark.parametrize("name,method", sorted(TENANT_API))
def test_an_integration_key_never_reaches_another_tenant(tenant_a, tenant_b, name, method):
    """Tenant A's integration key (every scope, acting for a member of tenant B or A): every
    route of tenant B is not found, and B's objects in A's URLs are never shown."""
    from copilot_admin.identity.services import integration_key_create

    _, secret = integration_key_create(actor=tenant_a.members["admin"], name="PSA", scopes=["copilot", "read"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    kwargs = {"tenant_slug": "bravo"}
    if name in OBJECT_KIND:
        kwargs["pk"] = _b_object_pk(tenant_b, OBJECT_KIND[name])
    body = {"acting_user": "admin@bravo.test", "company": str(tenant_b.companies[0].pk)}
    response = getattr(api, method)(reverse(name, kwargs=kwargs), body, format="json")
    assert response.status_code == 404, (name, method, response.status_code)
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
    if name in OBJECT_KIND:
        response = getattr(api, method)(reverse(name, kwargs={**kwargs, "tenant_slug": "alpha"}), body, format="json")
        assert response.status_code in (403, 404), (name, method, response.status_code)
        _assert_no_b_data(response)


def test_missing_and_foreign_answer_alike(tenant_a, tenant_b):
    api = api_client_for(tenant_a.members["admin"].user)
    foreign = api.get(reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tenant_b.members["tech"].pk}))
    missing = api.get(reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": 999999}))
    unknown_tenant = api.get(reverse("api:users-list", kwargs={"tenant_slug": "no-such-tenant"}))
    foreign_tenant = api.get(reverse("api:users-list", kwargs={"tenant_slug": "bravo"}))
    assert foreign.status_code == missing.status_code == unknown_tenant.status_code == foreign_tenant.status_code == 404
    assert foreign.json() == missing.json() == unknown_tenant.json() == foreign_tenant.json()


@pytest.mark.parametrize("name", ["api:users-list", "api:roles-list", "api:companies-list"])
def test_lists_hold_only_own_tenant(tenant_a, tenant_b, name):
    response = api_client_for(tenant_a.members["admin"].user).get(reverse(name, kwargs={"tenant_slug": "alpha"}))
    assert response.status_code == 200 and response.json()["results"]
    _assert_no_b_data(response)


@pytest.mark.parametrize("name", ["directory:users", "access:roles", "directory:companies", "directory:overview"])
def test_pages_hold_only_own_tenant(client, tenant_a, tenant_b, name):
    client.force_login(tenant_a.members["admin"].user)
    response = client.get(reverse(name, kwargs={"tenant_slug": "alpha"}))
    assert response.status_code == 200 and "Alpha MSP" in response.content.decode()
    _assert_no_b_data(response)


def test_relation_fields_refuse_foreign_objects(tenant_a, tenant_b):
    api = api_client_for(tenant_a.members["admin"].user)
    url = reverse("api:users-list", kwargs={"tenant_slug": "alpha"})
    foreign_role = api.post(url, {"email": "x@alpha.test", "user_type": "internal",
                                  "role": role_named(tenant_b.tenant, "Technician").pk}, format="json")
    assert foreign_role.status_code == 400 and "role" in foreign_role.json()["error"]["fields"]
    foreign_company = api.post(url, {"email": "y@alpha.test", "user_type": "co_managed",
                                     "role": role_named(tenant_a.tenant, "Co-managed Help Desk").pk,
                                     "companies": [tenant_b.companies[0].pk]}, format="json")
    assert foreign_company.status_code == 400 and "companies" in foreign_company.json()["error"]["fields"]
    clone_foreign = api.post(reverse("api:roles-list", kwargs={"tenant_slug": "alpha"}),
                             {"name": "Copy", "clone_from": role_named(tenant_b.tenant, "Technician").pk}, format="json")
    assert clone_foreign.status_code == 400


def test_tenant_is_never_writable_by_clients(tenant_a, tenant_b):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.post(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"}),
                        {"name": "Planted", "tenant": tenant_b.tenant.pk}, format="json")
    assert response.status_code == 201
    from tenants.models import ClientCompany

    assert ClientCompany.objects.for_tenant(tenant_a.tenant).filter(name="Planted").exists()
    assert not ClientCompany.objects.for_tenant(tenant_b.tenant).filter(name="Planted").exists()


def test_user_filter_by_foreign_role_returns_nothing(tenant_a, tenant_b):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.get(reverse("api:users-list", kwargs={"tenant_slug": "alpha"}),
                       {"role": role_named(tenant_b.tenant, "Technician").pk})
    assert response.status_code == 200 and response.json()["results"] == []

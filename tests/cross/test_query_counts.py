"""List pages and list endpoints run the same number of queries for 1 row and for 50."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from copilot_admin.access.models import SecurityRole
from copilot_admin.identity.services import integration_key_create
from tests.conftest import api_client_for
from tests.factories import CompanyFactory, TenantFactory, add_member


def _grow(kind, world, count):
    tenant = world.tenant
    start = _grow.serial = getattr(_grow, "serial", 0) + count
    for i in range(start, start + count):
        if kind == "users":
            add_member(tenant, "Co-managed Help Desk", email=f"bulk{i}@alpha.test", companies=world.companies[:2])
        elif kind == "companies":
            CompanyFactory(tenant=tenant, name=f"Bulk company {i}")
        elif kind == "roles":
            SecurityRole.objects.for_tenant(tenant).create(tenant=tenant, name=f"Bulk role {i}", permissions=["copilot.summarize"])
        elif kind == "tenants":
            TenantFactory()
        elif kind == "integration_keys":
            integration_key_create(actor=world.members["admin"], name=f"Bulk key {i}", scopes=["read"],
                                   allowed_addresses=["10.0.0.0/8"])


def _count(fn):
    # Counted warm: the first request after a write refills the cached access decision
    # (core/versioned_cache.py), whose reads do not grow with the rows listed.
    assert fn().status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        response = fn()
    assert response.status_code == 200
    return len(ctx.captured_queries)


PAGES = [("users", "directory:users"), ("companies", "directory:companies"), ("roles", "access:roles"),
         ("integration_keys", "identity:integration_keys")]
ENDPOINTS = [("users", "api:users-list"), ("companies", "api:companies-list"), ("roles", "api:roles-list"),
             ("integration_keys", "api:integration-keys-list")]


@pytest.mark.parametrize("kind,name", PAGES)
def test_tenant_list_page_query_count_is_flat(client, tenant_a, kind, name):
    client.force_login(tenant_a.members["admin"].user)
    url = reverse(name, kwargs={"tenant_slug": "alpha"})
    _grow(kind, tenant_a, 1)
    small = _count(lambda: client.get(url))
    _grow(kind, tenant_a, 49)
    large = _count(lambda: client.get(url))
    assert small == large, f"{name}: {small} queries with few rows, {large} with 50 more"


@pytest.mark.parametrize("kind,name", ENDPOINTS)
def test_tenant_list_endpoint_query_count_is_flat(tenant_a, kind, name):
    api = api_client_for(tenant_a.members["admin"].user)
    url = reverse(name, kwargs={"tenant_slug": "alpha"})
    _grow(kind, tenant_a, 1)
    small = _count(lambda: api.get(url))
    _grow(kind, tenant_a, 49)
    large = _count(lambda: api.get(url))
    assert small == large, f"{name}: {small} vs {large}"


def test_platform_tenant_list_query_count_is_flat(client, tenant_a, operator):
    client.force_login(operator)
    api = api_client_for(operator)
    small_page = _count(lambda: client.get(reverse("platform:tenants")))
    small_api = _count(lambda: api.get(reverse("api:platform-tenants-list")))
    _grow("tenants", tenant_a, 50)
    assert _count(lambda: client.get(reverse("platform:tenants"))) == small_page
    assert _count(lambda: api.get(reverse("api:platform-tenants-list"))) == small_api

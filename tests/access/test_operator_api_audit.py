"""A platform operator's access to a tenant through the tenant API is recorded in that
tenant's audit log, as the pages record it: one `operator.tenant_access` entry per request,
via api. A member's requests record nothing of the kind."""

import pytest
from django.urls import reverse

from tests.audit.conftest import entries
from tests.conftest import api_client_for
from tests.factories import add_member


def operator_entries(tenant):
    return entries(tenant, action="operator.tenant_access")


@pytest.fixture
def operator_in_alpha(tenant_a, operator):
    add_member(tenant_a.tenant, "Tenant Administrator", email=operator.email)
    return operator


@pytest.mark.parametrize("route", ["api:users-list", "api:companies-list", "api:settings", "api:limits"])
def test_operator_on_a_tenant_api_route_is_recorded_in_that_tenant(tenant_a, tenant_b, operator_in_alpha, route):
    response = api_client_for(operator_in_alpha).get(reverse(route, kwargs={"tenant_slug": "alpha"}),
                                                     REMOTE_ADDR="198.51.100.60")
    assert response.status_code == 200, response.content[:200]
    [entry] = operator_entries(tenant_a.tenant)
    assert (entry.actor_id, entry.actor_type, entry.object_type, entry.object_id) == (
        operator_in_alpha.pk, "operator", "route", route)
    assert entry.metadata["via"] == "api" and entry.metadata["method"] == "GET"
    assert entry.remote_addr == "198.51.100.60" and entry.correlation_id
    assert not operator_entries(tenant_b.tenant).exists()


def test_each_request_of_an_operator_is_one_entry(tenant_a, operator_in_alpha):
    api = api_client_for(operator_in_alpha)
    users = reverse("api:users-list", kwargs={"tenant_slug": "alpha"})
    assert [api.get(users).status_code for _ in range(2)] == [200, 200]
    detail = reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tenant_a.members["tech"].pk})
    assert api.get(detail).status_code == 200
    assert [e.object_id for e in operator_entries(tenant_a.tenant)] == ["api:users-list", "api:users-list",
                                                                        "api:users-detail"]
    assert len({e.correlation_id for e in operator_entries(tenant_a.tenant)}) == 3


@pytest.mark.parametrize("role", ["admin", "tech", "auditor"])
def test_a_members_request_records_no_operator_access(tenant_a, role):
    api = api_client_for(tenant_a.members[role].user)
    assert api.get(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"})).status_code == 200
    assert not operator_entries(tenant_a.tenant).exists()


def test_an_operator_refused_by_the_tenant_is_not_recorded_as_access(tenant_a, operator):
    """Not a member there: 404 before any access, so nothing to record as access."""
    response = api_client_for(operator).get(reverse("api:users-list", kwargs={"tenant_slug": "alpha"}))
    assert response.status_code == 404
    assert not operator_entries(tenant_a.tenant).exists()


def test_operator_copilot_call_is_recorded_as_access_too(tenant_a, operator_in_alpha):
    """The async copilot view lets requests in through the same resolver: an operator's call is
    recorded as access (here refused further down the call's chain: no deployment in the zone)."""
    url = reverse("api:copilot-summarize", kwargs={"tenant_slug": "alpha"})
    body = {"company": str(tenant_a.companies[0].pk), "issue": {"summary": "Printer offline"}}
    response = api_client_for(operator_in_alpha).post(url, body, format="json")
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_deployment_in_zone"
    [entry] = operator_entries(tenant_a.tenant)
    assert entry.object_id == "api:copilot-summarize" and entry.metadata["via"] == "api"
    assert entry.metadata["method"] == "POST" and entry.actor_id == operator_in_alpha.pk

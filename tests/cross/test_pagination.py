"""Every paginated list of the API bounds `limit` and `offset`: out-of-range or malformed
values are a 400 naming the parameter (never a database error, never every row)."""

import pytest

from copilot_admin.core.pagination import BoundedLimitOffsetPagination
from tests.conftest import api_client_for
from tests.cross.routes import all_routes, object_pk
from tests.cross.test_api_errors import assert_json_error, caller, concrete


def paginated_lists():
    routes = []
    for name, pattern, callback in all_routes():
        cls = getattr(callback, "cls", None)
        actions = getattr(callback, "actions", None) or {}
        if pattern.startswith("api/") and actions.get("get") == "list":
            pagination = getattr(cls, "pagination_class", None)
            if pagination is not None and issubclass(pagination, BoundedLimitOffsetPagination):
                routes.append((name, pattern))
    return routes


LISTS = paginated_lists()


def test_the_walk_finds_the_lists():
    names = {name for name, _ in LISTS}
    assert {"api:users-list", "api:companies-list", "api:abuse-cases-list", "api:roles-list",
            "api:platform-tenants-list", "api:platform-deployments-list"} <= names


@pytest.mark.parametrize("query,field", [
    ({"limit": str(2**63)}, "limit"),
    ({"limit": str(2**63 - 1)}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "1.5"}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"limit": ""}, "limit"),
    ({"limit": "1_0"}, "limit"),
    ({"offset": str(2**63)}, "offset"),
    ({"offset": str(2**63 - 1)}, "offset"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "x"}, "offset"),
    ({"limit": "10", "offset": str(10**30)}, "offset"),
])
def test_out_of_range_or_malformed_values_are_a_400_on_every_list(tenant_a, operator, query, field):
    object_pk("abuse_case", tenant_a)  # the abuse case list has a row
    for name, pattern in LISTS:
        response = api_client_for(caller(name, tenant_a, operator)).get(concrete(pattern), query)
        error = assert_json_error(response, 400, "invalid")
        assert set(error["fields"]) == {field}, (name, error)


def test_values_within_bounds_page_the_lists(tenant_a, operator):
    from tests.regions.fixtures import make_deployment

    object_pk("abuse_case", tenant_a)
    make_deployment(zone="us", name="us-1", endpoint="https://e.openai.azure.com")
    for name, pattern in LISTS:
        api = api_client_for(caller(name, tenant_a, operator))
        whole = api.get(concrete(pattern), {"limit": "200"})
        assert whole.status_code == 200, (name, whole.content[:200])
        count = whole.json()["count"]
        assert len(whole.json()["results"]) == min(count, 200), name
        if count:  # (the platform's abuse cases list only terminations: none here)
            page = api.get(concrete(pattern), {"limit": "1", "offset": str(count - 1)}).json()
            assert page["results"] == whole.json()["results"][count - 1:count], name
        beyond = api.get(concrete(pattern), {"offset": str(BoundedLimitOffsetPagination.max_offset)})
        assert beyond.status_code == 200 and beyond.json()["results"] == [], name


def test_the_default_page_holds_at_most_the_default_limit(tenant_a):
    from tests.factories import CompanyFactory

    for n in range(55):
        CompanyFactory(tenant=tenant_a.tenant, name=f"Bulk {n:02d}")
    body = api_client_for(tenant_a.members["admin"].user).get("/api/v1/tenants/alpha/companies/").json()
    assert body["count"] == 58 and len(body["results"]) == 50 and body["next"]


def test_the_schema_declares_the_bounds(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/tenants/{tenant_slug}/users/"]["get"]["parameters"]}
    assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 200)
    assert parameters["offset"]["minimum"] == 0

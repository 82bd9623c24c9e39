"""A JSON body nested too deep is refused with 400 in the contract's shape on every JSON route
(anonymous token login, a tenant route, the async copilot call), never a 500 (RecursionError)."""

import pytest
from rest_framework.test import APIClient

from copilot_admin.core.parsers import JSON_MAX_DEPTH
from tests.conftest import api_client_for


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def assert_too_deep(response):
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "too_deep" and response.json()["error"]["message"]


@pytest.mark.parametrize("body", [nested(1000), deep_object(1000), nested(100_000), nested(JSON_MAX_DEPTH + 1)])
def test_deep_body_to_the_anonymous_token_login(db, body):
    assert_too_deep(APIClient().post("/api/v1/auth/token/", body, content_type="application/json"))


def test_deep_body_to_a_tenant_route(tenant_a):
    admin = api_client_for(tenant_a.members["admin"].user)
    assert_too_deep(admin.patch("/api/v1/tenants/alpha/settings/", nested(1000), content_type="application/json"))
    assert_too_deep(admin.post("/api/v1/tenants/alpha/users/", deep_object(1000), content_type="application/json"))


def test_deep_body_to_the_copilot_call(tenant_a):
    tech = api_client_for(tenant_a.members["tech"].user)
    response = tech.post("/api/v1/tenants/alpha/copilot/summarize/", deep_object(1000), content_type="application/json")
    assert_too_deep(response)


def test_bodies_within_the_limit_still_parse(db):
    # Nested within the limit: parsed, then refused by the serializer as an invalid login, not as too deep.
    response = APIClient().post("/api/v1/auth/token/", nested(JSON_MAX_DEPTH), content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] != "too_deep"

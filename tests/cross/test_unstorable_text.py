"""Text that cannot be stored or echoed (NUL, a lone surrogate) in any field of any write
endpoint of the schema is a 400, never a 500."""

import json

import pytest

from copilot_admin.core.parsers import unstorable_text_at
from tenants.models import Tenant
from tests.conftest import api_client_for
from tests.cross.routes import OBJECT_KIND, all_routes, api_methods, object_pk
from tests.cross.test_api_errors import caller, concrete

BAD_VALUES = {"surrogate": "\ud800", "nul": "us\x00", "surrogate-in-text": "ok \udfff ok", "nul-alone": "\x00"}


def _resolve(schema, node):
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def _properties(schema, operation) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    body = content.get("application/json", {}).get("schema")
    if not body:
        return []
    body = _resolve(schema, body)
    properties = set(body.get("properties", {}))
    for part in body.get("allOf", []) + body.get("oneOf", []):
        properties |= set(_resolve(schema, part).get("properties", {}))
    return sorted(properties)


def write_operations(client):
    """(route name, path pattern, method, body field names) for every write of the API."""
    schema = json.loads(client.get("/api/schema/?format=json").content)
    by_path = {}
    for name, pattern, callback in all_routes():
        if pattern.startswith("api/v1/"):
            by_path[concrete(pattern, "{id}")] = (name, pattern, callback)
    operations = []
    for path, methods in schema["paths"].items():
        templated = path.replace("{tenant_slug}", "alpha")
        name, pattern, callback = by_path[templated]
        served = api_methods(callback)
        for method, operation in methods.items():
            if method in ("post", "put", "patch") and method in served:
                operations.append((name, pattern, method, _properties(schema, operation)))
    return operations


def _pk(name, world, operator):
    if name.startswith("api:platform-tenants"):
        return world.tenant.pk
    if name.startswith("api:platform-deployments"):
        from copilot_admin.regions.models import AzureDeployment
        from tests.regions.fixtures import make_deployment

        found = AzureDeployment.objects.filter(name="walk").first()
        return (found or make_deployment(zone="us", name="walk", endpoint="https://e.openai.azure.com")).pk
    if name.startswith("api:platform-abuse-cases"):
        from copilot_admin.usage.models import AbuseCase, CaseKind

        cases = AbuseCase.objects.for_tenant(world.tenant)
        case = cases.filter(dedupe_key="walk-termination").first() or cases.create(
            tenant=world.tenant, membership=world.members["tech"], kind=CaseKind.TERMINATION,
            dedupe_key="walk-termination", summary="terminated")
        return case.pk
    kind = OBJECT_KIND.get(name)
    if kind is None:
        return 1
    simple = {"membership": world.members["tech"].pk, "company": world.companies[0].pk,
              "role": world.members["tech"].role_id}
    return simple[kind] if kind in simple else object_pk(kind, world)


def test_unstorable_text_at_finds_keys_and_values_at_any_depth():
    assert unstorable_text_at({"a": [{"b": "fine"}, {"c": "x\x00"}]}) == "a.1.c"
    assert unstorable_text_at({"a\ud800": 1}) == "non_field_errors"
    assert unstorable_text_at({"a": "\U0001f600 paired"}) is None
    deep = "\ud800"
    for _ in range(5000):
        deep = [deep]
    assert unstorable_text_at({"deep": deep}) is not None  # no recursion


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
def test_every_field_of_every_write_refuses_unstorable_text(client, tenant_a, operator, bad):
    operations = write_operations(client)
    assert len(operations) >= 12, operations
    checked = 0
    for name, pattern, method, properties in operations:
        api = api_client_for(caller(name, tenant_a, operator))
        path = concrete(pattern, str(_pk(name, tenant_a, operator)))
        for field in properties or ["name"]:
            raw = json.dumps({field: BAD_VALUES[bad]})  # ASCII escapes: the client sends what an attacker would
            response = getattr(api, method)(path, raw, content_type="application/json")
            assert response.status_code == 400, (name, method, field, response.status_code, response.content[:300])
            assert response["Content-Type"].startswith("application/json")
            assert response.json()["error"]["code"] in ("invalid", "invalid_payload"), (name, field)
            checked += 1
    assert checked > 40


@pytest.mark.parametrize("field,value", [("user_type", "\ud800"), ("plan", "\ud800"), ("auth_mode", "\ud800"),
                                         ("zone", "us\x00"), ("name", "x\x00")])
def test_the_reported_cases(tenant_a, operator, field, value):
    body = json.dumps({field: value})
    admin = api_client_for(tenant_a.members["admin"].user)
    platform = api_client_for(operator)
    for api, path in [(admin, "/api/v1/tenants/alpha/users/"), (admin, "/api/v1/tenants/alpha/roles/"),
                      (platform, "/api/v1/platform/tenants/"), (platform, "/api/v1/platform/deployments/")]:
        response = api.post(path, body, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["fields"] == {
            field: ["Text must not contain NUL characters or unpaired surrogates."]}, (path, response.content)
    response = platform.patch(f"/api/v1/platform/tenants/{tenant_a.tenant.pk}/", body, content_type="application/json")
    assert response.status_code == 400


def test_form_encoded_bodies_are_refused_unread(operator):
    """The API reads JSON only: a form body, unstorable text or not, is 415 and nothing is written."""
    response = api_client_for(operator).post("/api/v1/platform/tenants/", "name=x&slug=x&plan=ITSM&zone=us%00",
                                             content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    assert not Tenant.objects.filter(slug="x").exists()

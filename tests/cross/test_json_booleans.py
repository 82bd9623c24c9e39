"""A field the schema declares boolean takes `true` or `false` only: `0`, `1`, `"true"` and
`"yes"` are a 400 naming the field on every write of the API (DRF's BooleanField took them,
so `{"copilot_enabled": 0}` switched the copilot off)."""

import json

import pytest

from tests.conftest import api_client_for
from tests.cross.test_api_errors import caller, concrete
from tests.cross.test_unstorable_text import _pk, _resolve, write_operations

NOT_BOOLEANS = [0, 1, "true", "yes"]


def _boolean_fields(schema, operation) -> dict[str, object]:
    """{field: a valid value} for the body fields declared boolean (or a map of booleans)."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if not body:
        return {}
    body = _resolve(schema, body)
    properties = dict(body.get("properties", {}))
    for part in body.get("allOf", []) + body.get("oneOf", []):
        properties.update(_resolve(schema, part).get("properties", {}))
    found = {}
    for name, spec in properties.items():
        spec = _resolve(schema, spec)
        if spec.get("readOnly"):
            continue
        if spec.get("type") == "boolean":
            found[name] = None
        elif spec.get("type") == "object" and spec.get("additionalProperties", {}).get("type") == "boolean":
            found[name] = "map"
    return found


@pytest.mark.parametrize("value", NOT_BOOLEANS, ids=repr)
def test_every_boolean_of_every_write_refuses_what_is_not_a_boolean(client, tenant_a, operator, value):
    schema = json.loads(client.get("/api/schema/?format=json").content)
    operations = {(path, method): operation for path, methods in schema["paths"].items()
                  for method, operation in methods.items()}
    checked = set()
    for name, pattern, method, _ in write_operations(client):
        path_key = concrete(pattern, "{id}").replace("/alpha/", "/{tenant_slug}/")
        operation = operations[(path_key, method)]
        api = api_client_for(caller(name, tenant_a, operator))
        path = concrete(pattern, str(_pk(name, tenant_a, operator)))
        for field, kind in _boolean_fields(schema, operation).items():
            sent = {"summarize": value} if kind == "map" else value
            response = getattr(api, method)(path, json.dumps({field: sent}), content_type="application/json")
            assert response.status_code == 400, (name, method, field, response.status_code, response.content[:300])
            assert field in response.json()["error"].get("fields", {}), (name, field, response.json())
            checked.add((name, field))
    fields = {field for _, field in checked}
    assert {"copilot_enabled", "features", "co_managed", "is_active", "active"} <= fields, checked


def test_true_and_false_still_work(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.patch("/api/v1/tenants/alpha/settings/", {"copilot_enabled": False, "features": {"summarize": True}},
                         format="json")
    assert response.status_code == 200 and response.json()["copilot_enabled"] is False
    assert response.json()["features"]["summarize"] is True

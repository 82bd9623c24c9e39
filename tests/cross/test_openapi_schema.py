"""The OpenAPI schema documents every answer an operation can give (access/schema.py), and the
API refuses what the schema says it refuses: list parameters and filters are validated, never
silently ignored. Regression tests for what schemathesis found (tests/cross/test_api_fuzz.py)."""

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.cross.routes import object_pk

ERROR_COMPONENTS = {"#/components/schemas/Error", "#/components/schemas/CopilotError"}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        return APIClient().get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


def test_every_operation_declares_its_error_answers_in_the_error_shape(schema):
    for method, path, operation in _operations(schema):
        responses = operation["responses"]
        label = f"{method} {path}"
        secured = any(requirement for requirement in operation.get("security", [{}]))
        takes_body = "requestBody" in operation
        takes_query = any(p["in"] == "query" for p in operation.get("parameters", []))
        expected = set()
        if secured:
            expected |= {"401", "403"}
        if re.search(r"{\w+}", path) or path.startswith("/api/v1/platform/"):
            expected.add("404")
        if takes_body or takes_query:
            expected.add("400")
        if takes_body:
            expected.add("415")
        assert expected <= set(responses), (label, sorted(expected - set(responses)))
        for status, response in responses.items():
            if int(status) >= 400:
                refs = {media["schema"]["$ref"] for media in response["content"].values()}
                assert refs <= ERROR_COMPONENTS, (label, status, refs)


def test_writes_that_a_state_can_refuse_declare_409_and_logins_declare_429(schema):
    paths = schema["paths"]
    assert "409" in paths["/api/v1/tenants/{tenant_slug}/roles/{id}/"]["delete"]["responses"]
    assert "409" in paths["/api/v1/tenants/{tenant_slug}/roles/"]["post"]["responses"]
    assert "409" in paths["/api/v1/tenants/{tenant_slug}/abuse-cases/{id}/dismiss/"]["post"]["responses"]
    assert "409" in paths["/api/v1/tenants/{tenant_slug}/users/{id}/"]["patch"]["responses"]
    token = paths["/api/v1/auth/token/"]["post"]["responses"]
    # 403 `sso_required`: password login for a domain with enforced single sign-on (DESIGN.md, "SSO and MFA").
    assert {"201", "400", "401", "403", "429"} <= set(token)
    copilot = paths["/api/v1/tenants/{tenant_slug}/copilot/summarize/"]["post"]["responses"]
    assert {"400", "401", "403", "404", "422", "429", "502", "503", "504"} <= set(copilot)
    assert "Retry-After" in token["429"]["headers"] and "Retry-After" in copilot["429"]["headers"]


def test_error_component_is_the_contract_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"} and "fields" in detail["properties"]


def test_an_open_abuse_case_matches_its_schema(schema, tenant_a, api_for):
    resolution = schema["components"]["schemas"]["AbuseCase"]["properties"]["resolution"]
    pk = object_pk("abuse_case", tenant_a)
    case = api_for(tenant_a.members["admin"].user).get(f"/api/v1/tenants/alpha/abuse-cases/{pk}/").json()
    assert case["resolution"] == ""
    enum = schema["components"]["schemas"][resolution["oneOf"][0]["$ref"].rsplit("/", 1)[1]]["enum"]
    blank = schema["components"]["schemas"][resolution["oneOf"][1]["$ref"].rsplit("/", 1)[1]]["enum"]
    assert "" in enum + blank


def test_a_changed_role_answers_with_its_member_count(tenant_a, api_for):
    api = api_for(tenant_a.members["admin"].user)
    technician = tenant_a.members["tech"].role
    created = api.post("/api/v1/tenants/alpha/roles/", {"name": "Night shift", "user_type": "internal"}, format="json")
    assert created.status_code == 201 and created.json()["users"] == 0
    response = api.patch(f"/api/v1/tenants/alpha/roles/{created.json()['id']}/", {"description": "x"}, format="json")
    assert response.status_code == 200 and response.json()["users"] == 0
    listed = {role["id"]: role["users"] for role in api.get("/api/v1/tenants/alpha/roles/").json()["results"]}
    assert listed[technician.pk] >= 1


@pytest.mark.parametrize("query", ["offset=true", "offset=-1", "limit=0", "limit=abc", "limit=%C2%B3"])
def test_malformed_page_parameters_are_refused(tenant_a, api_for, query):
    response = api_for(tenant_a.members["admin"].user).get(f"/api/v1/tenants/alpha/companies/?{query}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


def test_well_formed_page_parameters_still_page(tenant_a, api_for):
    response = api_for(tenant_a.members["admin"].user).get("/api/v1/tenants/alpha/companies/?limit=1&offset=1")
    assert response.status_code == 200 and len(response.json()["results"]) == 1


@pytest.mark.parametrize("url", [
    "/api/v1/tenants/alpha/users/?is_active=yes",
    "/api/v1/tenants/alpha/users/?role=1.5",
    "/api/v1/tenants/alpha/users/?role=1e40",
    "/api/v1/tenants/alpha/roles/?is_active=1",
    "/api/v1/tenants/alpha/companies/?co_managed=maybe",
    "/api/v1/tenants/alpha/abuse-cases/?status=closed",
    "/api/v1/tenants/alpha/abuse-cases/?kind=x",
    "/api/v1/tenants/alpha/abuse-cases/?user=abc",
])
def test_malformed_filters_are_refused_not_ignored(tenant_a, api_for, url):
    response = api_for(tenant_a.members["admin"].user).get(url)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid", response.content


def test_filters_still_filter(tenant_a, api_for):
    api = api_for(tenant_a.members["admin"].user)
    inactive = api.get("/api/v1/tenants/alpha/users/?is_active=false").json()
    assert inactive["count"] == 0
    role = tenant_a.members["tech"].role_id
    assert api.get(f"/api/v1/tenants/alpha/users/?role={role}&is_active=true").json()["count"] >= 1
    object_pk("abuse_case", tenant_a)
    assert api.get("/api/v1/tenants/alpha/abuse-cases/?status=open&kind=suspension").json()["count"] == 1


def test_platform_case_filter_is_validated(tenant_a, operator, api_for):
    api = api_for(operator)
    assert api.get("/api/v1/platform/abuse-cases/?status=bogus").status_code == 400
    assert api.get("/api/v1/platform/abuse-cases/?status=").status_code == 200
    assert api.get("/api/v1/platform/abuse-cases/?status=resolved").status_code == 200
    deployments = api.get("/api/v1/platform/deployments/?active=%F2%AB%91%9A")
    assert deployments.status_code == 400 and "active" in deployments.json()["error"]["fields"]


def test_the_api_reads_json_bodies_only(tenant_a, operator, api_for, schema):
    """A malformed multipart body used to parse as "no fields" and pass as an empty PATCH."""
    body = "--b\r\n3.29e252--b--\r\n"
    response = api_for(operator).generic(
        "PATCH", f"/api/v1/platform/tenants/{tenant_a.tenant.pk}/", body, content_type="multipart/form-data; boundary=b"
    )
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    form = api_for(tenant_a.members["admin"].user).post(
        "/api/v1/tenants/alpha/companies/", "name=Form+Co", content_type="application/x-www-form-urlencoded"
    )
    assert form.status_code == 415
    for method, path, operation in _operations(schema):
        if "requestBody" in operation:
            assert set(operation["requestBody"]["content"]) == {"application/json"}, (method, path)


@pytest.mark.parametrize("page_size", ["false", "0", "501"])
def test_malformed_audit_page_size_is_refused(tenant_a, api_for, page_size):
    response = api_for(tenant_a.members["auditor"].user).get(f"/api/v1/tenants/alpha/audit/?page_size={page_size}")
    assert response.status_code == 400 and "page_size" in response.json()["error"]["fields"]


def test_an_empty_choice_filter_is_documented_as_no_filter(schema, tenant_a, api_for):
    parameters = schema["paths"]["/api/v1/tenants/{tenant_slug}/users/"]["get"]["parameters"]
    user_type = next(p for p in parameters if p["name"] == "user_type")
    assert "" in user_type["schema"]["enum"]
    assert "" not in schema["components"]["schemas"]["UserTypeEnum"]["enum"]
    response = api_for(tenant_a.members["admin"].user).get("/api/v1/tenants/alpha/users/?user_type=")
    assert response.status_code == 200 and response.json()["count"] == 4

"""Every error under /api/ is JSON in the contract's shape: a non-numeric id on every detail
route, unknown paths, a wrong method on every route, a server error."""

import re

import pytest

from tests.conftest import api_client_for
from tests.cross.routes import all_routes, api_methods

METHODS = ("get", "post", "put", "patch", "delete")


def api_routes():
    return [(name, pattern, callback) for name, pattern, callback in all_routes() if pattern.startswith("api/")]


def concrete(pattern: str, pk: str = "1") -> str:
    path = pattern.replace("<slug:tenant_slug>", "alpha").replace("^", "").replace("$", "")
    return "/" + re.sub(r"\(\?P<pk>[^)]*\)", pk, path)


def caller(name: str, tenant_a, operator):
    """Who may use the route: an operator for the platform API, the tenant's admin elsewhere."""
    return operator if name.startswith("api:platform-") else tenant_a.members["admin"].user


def assert_json_error(response, status: int, code: str | None = None):
    assert response.status_code == status, (response.status_code, response.content[:200])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    # The replaced answer keeps the headers every answer carries (the replacement used to drop them).
    assert "no-store" in response.get("Cache-Control", ""), dict(response.items())
    assert response.has_header("Content-Security-Policy"), dict(response.items())
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["code"]
    if code:
        assert error["code"] == code, error
    return error


DETAIL_ROUTES = [(name, pattern, callback) for name, pattern, callback in api_routes() if "(?P<pk>" in pattern]


def test_the_walk_finds_detail_routes():
    assert len(DETAIL_ROUTES) >= 8


@pytest.mark.parametrize("pk", ["abc", "1.5", "-1", "9" * 19, "1e3", "%00", "%ED%A0%80"])
def test_a_non_numeric_id_is_a_json_404_on_every_detail_route(tenant_a, operator, pk):
    for name, pattern, callback in DETAIL_ROUTES:
        api = api_client_for(caller(name, tenant_a, operator))
        for method in api_methods(callback):
            response = getattr(api, method)(concrete(pattern, pk), {}, format="json")
            assert_json_error(response, 404, "not_found")


@pytest.mark.parametrize("path", [
    "/api/", "/api/v1/", "/api/v1/nope/", "/api/v2/tenants/alpha/users/", "/api/v1/tenants/alpha/nope/",
    "/api/v1/tenants/alpha/users/1/nope/", "/api/v1/tenants/not%20a%20slug/users/", "/api/v1/platform/nope/",
    "/api/schema/nope/", "/api/v1/tenants/alpha/users/abc/%00/",
])
@pytest.mark.parametrize("who", ["admin", "operator", "anonymous"])
def test_unknown_api_paths_are_json_404(tenant_a, operator, path, who):
    user = {"admin": tenant_a.members["admin"].user, "operator": operator, "anonymous": None}[who]
    api = api_client_for(user)
    for method in METHODS:
        response = getattr(api, method)(path, {}, format="json")
        assert_json_error(response, 404, "not_found")


def test_a_wrong_method_is_a_json_405_on_every_route(tenant_a, operator):
    checked = 0
    for name, pattern, callback in api_routes():
        allowed = set(api_methods(callback))
        cls = getattr(callback, "cls", None)
        if name in ("schema", "api-docs"):
            allowed = {"get"}
        api = api_client_for(caller(name, tenant_a, operator))
        path = concrete(pattern, str(tenant_a.members["tech"].pk))
        for method in set(METHODS) - allowed:
            response = getattr(api, method)(path, {}, format="json")
            assert_json_error(response, 405, "method_not_allowed")
            assert response.has_header("Allow"), (name, method, cls)
            checked += 1
    assert checked > 40


def test_a_server_error_is_json(tenant_a, monkeypatch):
    from copilot_admin.access.api import RoleViewSet

    def explode(self, request, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(RoleViewSet, "list", explode)
    api = api_client_for(tenant_a.members["admin"].user)
    api.raise_request_exception = False
    response = api.get("/api/v1/tenants/alpha/roles/")
    error = assert_json_error(response, 500, "server_error")
    assert "boom" not in error["message"]


def test_pages_keep_their_html_errors(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    response = client.get("/t/alpha/nope/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")

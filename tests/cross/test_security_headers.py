"""Every route of the project, as a tenant's administrator, as the platform operator and
anonymously: a Content-Security-Policy that allows no inline script, no inline script or
event-handler attribute in any rendered page, and `Cache-Control: no-store` on every page and
API answer (static files keep their own caching)."""

import re

import pytest
from django.urls import reverse

from tests.cross.routes import OBJECT_KIND, all_routes, api_methods, object_pk
from tests.regions.fixtures import make_deployment

ACTORS = ["admin", "operator", "anonymous"]

# A <script> element that is executable and has no src (a JSON data block is not executable).
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>", re.I)
EVENT_ATTRIBUTE = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)
STYLE_ELEMENT = re.compile(r"<style[\s>]", re.I)


def _directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def _url(name: str, route: str, world, operator_world) -> str:
    kwargs = {}
    if "<slug:tenant_slug>" in route:
        kwargs["tenant_slug"] = world.tenant.slug
    if "<uidb64>" in route:
        kwargs.update(uidb64="MQ", token="set-password")
    if "token>" in route:
        kwargs.setdefault("token", "not-an-invitation")
    if "<path>" in route:
        kwargs["path"] = "openai/deployments/x/chat/completions"
    if "pk>" in route or "<int:pk>" in route:
        kwargs["pk"] = _pk(name, world, operator_world)
    if "<int:membership_pk>" in route:  # a tenant's pending invitation, from the console
        kwargs["membership_pk"] = object_pk("pending_membership", world)
    return reverse(name, kwargs=kwargs)


def _pk(name: str, world, operator_world) -> int:
    if name in OBJECT_KIND:
        kind = OBJECT_KIND[name]
        return {"membership": world.members["tech"].pk, "company": world.companies[0].pk,
                "role": world.members["tech"].role_id}.get(kind) or object_pk(kind, world)
    if "deployment" in name:
        return operator_world["deployment"].pk
    if "abuse" in name:
        return object_pk("abuse_case", world)
    return world.tenant.pk


def _page_requests():
    """(name, route, method) for every route, with the methods it serves to a GET-ing browser."""
    for name, route, callback in all_routes():
        methods = set(api_methods(callback)) if hasattr(callback, "cls") else set()
        yield name, route, "get" if not methods or "get" in methods else sorted(methods)[0]


@pytest.fixture
def operator_world(operator, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_KEY_TEST", "not-a-secret")
    deployment = make_deployment(zone="us", name="us-headers", endpoint="https://us.example.com",
                                 api_key_env="AZURE_OPENAI_KEY_TEST")
    return {"deployment": deployment}


@pytest.mark.parametrize("actor", ACTORS)
def test_every_route_has_a_strict_csp_and_no_store(client, tenant_a, operator, operator_world, actor):
    user = {"admin": tenant_a.members["admin"].user, "operator": operator}.get(actor)
    if user is not None:
        client.force_login(user)
    checked = []
    for name, route, method in _page_requests():
        if name == "logout":
            continue  # would end the session this test walks with
        url = _url(name, route, tenant_a, operator_world)
        response = getattr(client, method)(url, HTTP_ACCEPT="text/html,application/json;q=0.9,*/*;q=0.8")
        assert response.status_code < 500, (name, url, response.status_code)
        policy = _directives(response["Content-Security-Policy"])
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"], name
        assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"], name
        assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'self'"], name
        assert "'unsafe-inline'" not in policy["style-src"], name
        assert "no-store" in response["Cache-Control"], (name, url)
        if response.get("Content-Type", "").startswith("text/html"):
            body = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
            assert not INLINE_SCRIPT.search(body), (name, INLINE_SCRIPT.search(body).group(0))
            assert not EVENT_ATTRIBUTE.search(body), (name, EVENT_ATTRIBUTE.search(body).group(0))
            assert not STYLE_ATTRIBUTE.search(body), (name, STYLE_ATTRIBUTE.search(body).group(0))
            assert not STYLE_ELEMENT.search(body), name
            if response.status_code == 200:
                checked.append(name)
    if actor == "admin":
        assert {"directory:overview", "usage:dashboard", "copilot:playground", "api-docs"} <= set(checked)
    if actor == "operator":
        assert {"platform:tenants", "platform:deployment_edit", "platform_audit:list"} <= set(checked)


def test_api_answers_are_not_stored_and_static_files_keep_their_caching(client, tenant_a, api_for):
    api = api_for(tenant_a.members["admin"].user)
    for url in ("/api/v1/tenants/alpha/users/", "/api/v1/tenants/alpha/users/999999/", "/api/schema/"):
        response = api.get(url)
        assert "no-store" in response["Cache-Control"], url
    refused = api_for(None).get("/api/v1/tenants/alpha/users/")
    assert refused.status_code == 401 and "no-store" in refused["Cache-Control"]


def test_swagger_ui_init_script_is_a_separate_file(client):
    page = client.get(reverse("api-docs"))
    assert page.status_code == 200
    script_src = re.search(r'<script src="([^"]*script=[^"]*)"', page.content.decode()).group(1)
    script = client.get(script_src.replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_the_server_error_page_has_no_inline_style():
    from django.template.loader import render_to_string

    body = render_to_string("500.html")
    assert not STYLE_ATTRIBUTE.search(body) and not INLINE_SCRIPT.search(body)

"""Every route x every role: the expected status, derived from the policy table and each
role's permissions, and the permission each view declares matches the table."""

import pytest
from django.urls import reverse

from tests.conftest import ROLES, api_client_for
from tests.cross.routes import (
    GLOBAL_ROUTES,
    OBJECT_KIND,
    OPERATOR_REDIRECTS,
    TENANT_API,
    TENANT_PAGES,
    all_routes,
    api_methods,
    holds,
    object_pk,
)

ACTORS = [*ROLES, "outsider", "operator", "anonymous"]


def test_every_route_is_in_the_policy_table():
    missing = []
    for name, route, callback in all_routes():
        if name in GLOBAL_ROUTES or name in TENANT_PAGES:
            continue
        methods = api_methods(callback)
        if not methods or any((name, m) not in TENANT_API for m in methods):
            missing.append((name, route, sorted(methods)))
    assert missing == [], f"routes without a declared policy: {missing}"


def test_table_has_no_stale_routes():
    names = {name for name, _, _ in all_routes()}
    stale = (set(GLOBAL_ROUTES) | set(TENANT_PAGES) | {n for n, _ in TENANT_API}) - names
    assert stale == set()


def test_views_declare_the_tabled_permission():
    for name, _, callback in all_routes():
        if name in TENANT_PAGES:
            view = callback.view_class
            declared = (view.permission_required, view.read_permission) if view.read_permission else (
                view.permission_required)
            assert declared == TENANT_PAGES[name], name
        for method, action in api_methods(callback).items():
            if (name, method) in TENANT_API:
                cls = callback.cls
                alternative = cls.alternatives.get(action)
                declared = (cls.permissions[action], alternative) if alternative else cls.permissions[action]
                tabled = TENANT_API[(name, method)]
                # A route tabled with one permission may declare an alternative the table leaves out.
                primary = declared[0] if isinstance(declared, tuple) and not isinstance(tabled, tuple) else declared
                assert primary == tabled, (name, method)


def _object_pk(world, kind, custom_role):
    built_in = {"membership": world.members["tech"].pk, "company": world.companies[0].pk, "role": custom_role.pk}
    return built_in[kind] if kind in built_in else object_pk(kind, world)


@pytest.fixture
def custom_role(tenant_a):
    from copilot_admin.access.models import SecurityRole

    return SecurityRole.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, name="Night shift", user_type="internal", permissions=["copilot.summarize"]
    )


def _actor_user(actor, tenant_a, tenant_b, operator):
    if actor == "anonymous":
        return None
    if actor == "outsider":
        return tenant_b.members["admin"].user
    if actor == "operator":
        return operator
    return tenant_a.members[actor].user


def _expected(actor, permission, tenant_a, *, api: bool) -> int | None:
    """None means: allowed (any status below 400 except for validation answers)."""
    if actor == "anonymous":
        return 401 if api else 302
    if actor in ("outsider", "operator"):
        return 404
    return None if holds(tenant_a.members[actor], permission) else 403


def _url(name, world, custom_role):
    kwargs = {"tenant_slug": world.tenant.slug}
    if name in OBJECT_KIND:
        kwargs["pk"] = _object_pk(world, OBJECT_KIND[name], custom_role)
    return reverse(name, kwargs=kwargs)


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("name", sorted(TENANT_PAGES))
def test_tenant_page_matrix(client, tenant_a, tenant_b, operator, custom_role, name, actor):
    user = _actor_user(actor, tenant_a, tenant_b, operator)
    if user is not None:
        client.force_login(user)
    response = client.get(_url(name, tenant_a, custom_role))
    expected = _expected(actor, TENANT_PAGES[name], tenant_a, api=False)
    if actor == "operator" and name in OPERATOR_REDIRECTS:
        # Not a member, never let in: sent to the tenant's page in the console.
        target = reverse(OPERATOR_REDIRECTS[name], kwargs={"pk": tenant_a.tenant.pk})
        assert (response.status_code, response.get("Location")) == (302, target), (name, actor)
    elif expected is None:
        assert response.status_code == 200, (name, actor)
    else:
        assert response.status_code == expected, (name, actor, response.status_code)


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("name,method", sorted(TENANT_API))
def test_tenant_api_matrix(tenant_a, tenant_b, operator, custom_role, name, method, actor):
    client = api_client_for(_actor_user(actor, tenant_a, tenant_b, operator))
    response = getattr(client, method)(_url(name, tenant_a, custom_role), {}, format="json")
    expected = _expected(actor, TENANT_API[(name, method)], tenant_a, api=True)
    assert "error" in response.json() if response.status_code >= 400 else True
    if expected is None:
        # Allowed: reads succeed, writes with an empty body succeed or fail validation; a delete
        # may be refused by the object's state (a company co-managed users are bound to: 409).
        allowed = (200, 201, 204, 400, 409) if method == "delete" else (200, 201, 204, 400)
        assert response.status_code in allowed, (name, method, actor, response.status_code)
        if method == "get":
            assert response.status_code == 200
    else:
        assert response.status_code == expected, (name, method, actor, response.status_code)


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(
    "name",
    ["platform:tenants", "platform:tenant_create", "platform:tenant_edit", "platform:tenant_overview",
     "platform:tenant_suspend"],
)
def test_platform_pages_matrix(client, tenant_a, tenant_b, operator, name, actor):
    user = _actor_user(actor, tenant_a, tenant_b, operator)
    if user is not None:
        client.force_login(user)
    kwargs = {"pk": tenant_a.tenant.pk} if name.endswith(("_edit", "_overview", "_suspend")) else {}
    response = client.get(reverse(name, kwargs=kwargs))
    expected = {"operator": 200, "anonymous": 302}.get(actor, 404)
    assert response.status_code == expected


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("name", ["api:platform-tenants-list", "api:platform-tenants-detail"])
def test_platform_api_matrix(tenant_a, tenant_b, operator, name, actor):
    client = api_client_for(_actor_user(actor, tenant_a, tenant_b, operator))
    kwargs = {"pk": tenant_a.tenant.pk} if name.endswith("detail") else {}
    response = client.get(reverse(name, kwargs=kwargs))
    expected = {"operator": 200, "anonymous": 401}.get(actor, 404)
    assert response.status_code == expected
    assert "error" in response.json() if expected != 200 else "slug" in str(response.json())


def test_home_requires_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


@pytest.mark.parametrize("role", list(ROLES))
def test_navigation_offers_only_permitted_pages(client, tenant_a, role):
    client.force_login(tenant_a.members[role].user)
    body = client.get(reverse("directory:overview", kwargs={"tenant_slug": "alpha"})).content.decode()
    for name in ("directory:users", "access:roles", "copilot:settings"):
        link = f'href="{reverse(name, kwargs={"tenant_slug": "alpha"})}"'
        assert (link in body) == holds(tenant_a.members[role], TENANT_PAGES[name]), (role, name)

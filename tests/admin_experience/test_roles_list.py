"""Issue 14: the roles list sorts by column (?sort=, as the users list) and pages; the page links
keep the order."""

from django.urls import reverse

from copilot_admin.access.models import SecurityRole


def roles_url():
    return reverse("access:roles", kwargs={"tenant_slug": "alpha"})


def test_roles_list_sorts_by_column(client, tenant_a):
    SecurityRole.objects.for_tenant(tenant_a.tenant).create(tenant=tenant_a.tenant, name="Nobody holds it", permissions=[])
    client.force_login(tenant_a.members["admin"].user)
    default = client.get(roles_url()).context["object_list"]
    assert [r.is_system for r in default] == sorted((r.is_system for r in default), reverse=True)
    by_users = client.get(roles_url(), {"sort": "-users"})
    counts = [r.user_count for r in by_users.context["object_list"]]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    body = by_users.content.decode()
    assert 'aria-sort="descending"' in body and 'href="?sort=users"' in body  # the active column flips
    names = [r.name for r in client.get(roles_url(), {"sort": "name"}).context["object_list"]]
    assert names == sorted(names)
    # An unknown key falls back to the default order, never an error or an arbitrary field.
    fallback = client.get(roles_url(), {"sort": "permissions__0"})
    assert fallback.status_code == 200 and list(fallback.context["object_list"]) == list(default)


def test_roles_list_pages_and_keeps_the_sort(client, tenant_a):
    SecurityRole.objects.for_tenant(tenant_a.tenant).bulk_create(
        [SecurityRole(tenant=tenant_a.tenant, name=f"Bulk {n:03}", permissions=[]) for n in range(60)]
    )
    total = SecurityRole.objects.for_tenant(tenant_a.tenant).count()
    client.force_login(tenant_a.members["admin"].user)
    first = client.get(roles_url(), {"sort": "-name"})
    assert len(first.context["object_list"]) == 50 and first.context["is_paginated"]
    assert "sort=-name&page=2" in first.content.decode()
    second = client.get(roles_url(), {"sort": "-name", "page": 2}).context["object_list"]
    assert len(second) == total - 50
    names = [r.name for r in first.context["object_list"]] + [r.name for r in second]
    assert names == sorted(names, reverse=True)

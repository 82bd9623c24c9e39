"""Security role rules: user type, co-managed ceiling, no escalation, system roles read-only."""

import pytest
from django.urls import reverse

from copilot_admin.access import services
from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import ADMIN_PERMISSIONS, Perm, all_permissions, copilot_grants
from copilot_admin.access.policy import has_permission, permissions_of
from copilot_admin.core.errors import ApplicationError, PermissionRefused
from tests.conftest import api_client_for
from tests.factories import add_member, role_named


def roles_url(**kw):
    return reverse("api:roles-list", kwargs={"tenant_slug": "alpha", **kw})


def role_url(pk):
    return reverse("api:roles-detail", kwargs={"tenant_slug": "alpha", "pk": pk})


@pytest.mark.parametrize("permission", sorted(ADMIN_PERMISSIONS))
def test_co_managed_role_cannot_hold_admin_permissions(tenant_a, permission):
    with pytest.raises(ApplicationError) as error:
        services.role_create(actor=tenant_a.members["admin"], name="Bad", user_type="co_managed", permissions=[permission])
    assert error.value.code == "co_managed_ceiling"
    assert not SecurityRole.objects.for_tenant(tenant_a.tenant).filter(name="Bad").exists()


def test_co_managed_ceiling_on_update_and_api(tenant_a):
    role = role_named(tenant_a.tenant, "Co-managed Help Desk")
    clone = services.role_clone(actor=tenant_a.members["admin"], source=role, name="CM copy")
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.patch(role_url(clone.pk), {"permissions": ["copilot.summarize", "usage.view"]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "co_managed_ceiling"
    clone.refresh_from_db()
    assert set(clone.permissions) == copilot_grants()


def test_policy_applies_ceiling_even_to_a_corrupt_role(tenant_a):
    """Defence in depth: a co-managed role row holding admin codes grants none of them."""
    role = role_named(tenant_a.tenant, "Co-managed Help Desk")
    SecurityRole.objects.for_tenant(tenant_a.tenant).filter(pk=role.pk).update(permissions=sorted(all_permissions()))
    member = tenant_a.members["comanaged"]
    member.role.refresh_from_db()
    assert permissions_of(member) == copilot_grants()
    assert not has_permission(member, Perm.USERS)


def test_nobody_grants_what_they_do_not_hold(tenant_a, user_admin):
    with pytest.raises(PermissionRefused) as error:
        services.role_create(actor=user_admin, name="Auditor+", user_type="internal", permissions=[Perm.AUDIT_VIEW])
    assert error.value.code == "escalation_refused"
    api = api_client_for(user_admin.user)
    response = api.post(roles_url(), {"name": "Sneaky", "user_type": "internal", "permissions": ["audit.export"]}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "escalation_refused"
    # Cloning a role with more permissions than the actor holds is the same escalation.
    response = api.post(roles_url(), {"name": "Admin copy", "clone_from": role_named(tenant_a.tenant, "Tenant Administrator").pk}, format="json")
    assert response.status_code == 403
    # Granting only what one holds works.
    response = api.post(roles_url(), {"name": "Summarizers", "user_type": "internal", "permissions": ["copilot.summarize"]}, format="json")
    assert response.status_code == 201, response.json()


def test_adding_unheld_permission_to_existing_role_is_refused(tenant_a, user_admin):
    role = services.role_create(actor=user_admin, name="Helpers", user_type="internal", permissions=["copilot.summarize"])
    with pytest.raises(PermissionRefused):
        services.role_update(actor=user_admin, role=role, permissions=["copilot.summarize", Perm.AUDIT_VIEW])
    role.refresh_from_db()
    assert role.permissions == ["copilot.summarize"]


def test_assigning_a_role_above_oneself_is_refused(tenant_a, user_admin):
    api = api_client_for(user_admin.user)
    url = reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tenant_a.members["tech"].pk})
    response = api.patch(url, {"role": role_named(tenant_a.tenant, "Compliance Auditor").pk}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "escalation_refused"
    tenant_a.members["tech"].refresh_from_db()
    assert tenant_a.members["tech"].role.name == "Technician"
    # Nor can a lesser admin edit someone who holds more than they do.
    url = reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tenant_a.members["admin"].pk})
    assert api.patch(url, {"is_active": False}, format="json").status_code == 403


def test_role_must_match_user_type(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    url = reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tenant_a.members["comanaged"].pk})
    response = api.patch(url, {"role": role_named(tenant_a.tenant, "Technician").pk}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "role_user_type_mismatch"
    response = api.post(reverse("api:users-list", kwargs={"tenant_slug": "alpha"}), {
        "email": "new@alpha.test", "user_type": "internal", "role": role_named(tenant_a.tenant, "Co-managed Help Desk").pk,
    }, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "role_user_type_mismatch"


@pytest.mark.parametrize("change", [
    {"name": "Renamed"}, {"permissions": ["copilot.summarize"]}, {"description": "x"}, {"user_type": "co_managed"},
])
def test_system_roles_are_read_only(tenant_a, change):
    role = role_named(tenant_a.tenant, "Technician")
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.patch(role_url(role.pk), change, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "system_role_read_only"
    assert api.delete(role_url(role.pk)).status_code == 409
    role.refresh_from_db()
    assert role.name == "Technician" and set(role.permissions) == copilot_grants()


def test_system_roles_can_be_cloned_and_deactivated(tenant_a):
    role = role_named(tenant_a.tenant, "Technician")
    api = api_client_for(tenant_a.members["admin"].user)
    clone = api.post(roles_url(), {"name": "Senior Tech", "clone_from": role.pk}, format="json")
    assert clone.status_code == 201
    assert clone.json()["permissions"] == sorted(copilot_grants()) and clone.json()["is_system"] is False
    # Held by the technician: refused until it is moved (issue 14: no silent lock-out).
    held = api.patch(role_url(role.pk), {"is_active": False}, format="json")
    assert held.status_code == 409 and held.json()["error"]["code"] == "role_in_use"
    assert "1 user holds this role" in held.json()["error"]["message"]
    tech_url = reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tenant_a.members["tech"].pk})
    assert api.patch(tech_url, {"role": clone.json()["id"]}, format="json").status_code == 200
    response = api.patch(role_url(role.pk), {"is_active": False}, format="json")
    assert response.status_code == 200 and response.json()["is_active"] is False


def test_cannot_deactivate_own_role(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.patch(role_url(tenant_a.members["admin"].role_id), {"is_active": False}, format="json")
    assert response.status_code == 409


def test_role_in_use_cannot_be_deleted(tenant_a):
    admin = tenant_a.members["admin"]
    role = services.role_create(actor=admin, name="Temp", user_type="internal", permissions=["copilot.summarize"])
    add_member(tenant_a.tenant, "Temp", email="temp@alpha.test")
    api = api_client_for(admin.user)
    assert api.delete(role_url(role.pk)).json()["error"]["code"] == "role_in_use"
    unused = services.role_create(actor=admin, name="Unused", user_type="internal", permissions=[])
    assert api.delete(role_url(unused.pk)).status_code == 204


def test_unknown_permission_code_is_a_validation_error(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.post(roles_url(), {"name": "X", "user_type": "internal", "permissions": ["admin.everything"]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


def test_duplicate_role_name_is_a_validation_error(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.post(roles_url(), {"name": "technician", "user_type": "internal"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "duplicate"


def test_role_matrix_page_saves_permissions(client, tenant_a):
    admin = tenant_a.members["admin"]
    client.force_login(admin.user)
    response = client.post(reverse("access:role_create", kwargs={"tenant_slug": "alpha"}), {
        "name": "Dispatch", "user_type": "internal", "permissions": ["copilot.prioritize", "usage.view"],
    })
    assert response.status_code == 302
    role = SecurityRole.objects.for_tenant(tenant_a.tenant).get(name="Dispatch")
    assert set(role.permissions) == {"copilot.prioritize", "usage.view"}
    page = client.get(reverse("access:role_edit", kwargs={"tenant_slug": "alpha", "pk": role.pk})).content.decode()
    assert 'value="copilot.prioritize" id="perm-copilot.prioritize" checked' in page
    # Each module of the catalogue appears in the matrix.
    for module in ("Users", "Security roles", "Audit", "Copilot features"):
        assert module in page


def test_system_role_page_is_read_only(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    role = role_named(tenant_a.tenant, "Technician")
    url = reverse("access:role_edit", kwargs={"tenant_slug": "alpha", "pk": role.pk})
    page = client.get(url).content.decode()
    assert "<fieldset disabled>" in page and "system role: read-only" in page
    response = client.post(url, {"name": "Hacked", "user_type": "internal", "permissions": ["copilot.summarize"], "action": "save"})
    assert response.status_code == 200 and "read-only" in response.content.decode()
    role.refresh_from_db()
    assert role.name == "Technician"

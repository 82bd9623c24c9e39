"""Issue 14: deleting and deactivating roles ask on a page of their own what follows; a role
users hold cannot be deactivated or deleted until they are moved (the seeded Compliance
Auditor role no longer locks its auditor out); a system role can be cloned, not deactivated,
while it is the only active role for its user type."""

import pytest
from django.urls import reverse

from copilot_admin.access import services
from copilot_admin.access.models import SecurityRole
from copilot_admin.core.errors import Conflict
from copilot_admin.directory import services as directory_services
from tests.factories import role_named


def url(name, pk):
    return reverse(name, kwargs={"tenant_slug": "alpha", "pk": pk})


def test_deactivating_the_held_auditor_role_is_refused_with_a_sentence(client, tenant_a):
    auditor_role = role_named(tenant_a.tenant, "Compliance Auditor")
    client.force_login(tenant_a.members["admin"].user)
    page = client.get(url("access:role_deactivate", auditor_role.pk)).content.decode()
    assert "1 user holds this role; move them to another role first." in page
    assert 'class="btn btn-danger" type="submit"' not in page  # nothing to confirm while it is held
    assert "What will follow" not in page
    client.post(url("access:role_deactivate", auditor_role.pk))
    auditor_role.refresh_from_db()
    assert auditor_role.is_active
    with pytest.raises(Conflict, match="1 user holds this role"):
        services.role_update(actor=tenant_a.members["admin"], role=auditor_role, is_active=False)


def test_a_free_role_is_deactivated_and_deleted_after_confirmation(client, tenant_a):
    admin = tenant_a.members["admin"]
    role = services.role_create(actor=admin, name="Night shift", user_type="internal", permissions=[])
    client.force_login(admin.user)
    page = client.get(url("access:role_deactivate", role.pk)).content.decode()
    assert "Deactivate the role Night shift?" in page and "nobody loses access" in page
    role.refresh_from_db()
    assert role.is_active  # the page itself changes nothing
    assert client.post(url("access:role_deactivate", role.pk)).status_code == 302
    role.refresh_from_db()
    assert not role.is_active
    assert "Delete the role Night shift?" in client.get(url("access:role_delete", role.pk)).content.decode()
    assert client.post(url("access:role_delete", role.pk)).status_code == 302
    assert not SecurityRole.objects.for_tenant(tenant_a.tenant).filter(pk=role.pk).exists()


def test_a_system_role_that_is_the_only_one_for_its_user_type_stays(client, tenant_a):
    admin = tenant_a.members["admin"]
    comanaged_role = role_named(tenant_a.tenant, "Co-managed Help Desk")
    clone = services.role_clone(actor=admin, source=comanaged_role, name="Help desk (ours)")
    directory_services.membership_update(actor=admin, membership=tenant_a.members["comanaged"], role=clone)
    # Nobody holds it now and the clone is another active co-managed role: it may go.
    assert services.role_removal_blockers(role=comanaged_role) == []
    # Without another active co-managed role it stays, and the page says to clone it.
    SecurityRole.objects.for_tenant(tenant_a.tenant).filter(pk=clone.pk).update(is_active=False)
    blockers = services.role_removal_blockers(role=comanaged_role)
    assert blockers == ["It is the only active role for co-managed users; clone it instead and change the copy."]
    with pytest.raises(Conflict):
        services.role_update(actor=admin, role=comanaged_role, is_active=False)
    client.force_login(admin.user)
    assert "clone it instead" in client.get(url("access:role_deactivate", comanaged_role.pk)).content.decode()
    # A system role has no delete page at all.
    assert client.get(url("access:role_delete", comanaged_role.pk)).status_code == 404

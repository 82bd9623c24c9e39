"""Role and company writes that used to answer 500 or let a lesser manager escalate: creating
with `is_active`, unique names under concurrency, and changes to a role above the actor."""

import threading

import pytest
from django.db import connection, connections
from django.urls import reverse

from copilot_admin.access import services
from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm
from copilot_admin.core.errors import ApplicationError, PermissionRefused
from copilot_admin.directory import services as tenant_services
from tenants.models import ClientCompany
from tests.conftest import api_client_for, build_tenant, require_service
from tests.factories import add_member, role_named


def roles_url():
    return reverse("api:roles-list", kwargs={"tenant_slug": "alpha"})


def role_url(pk):
    return reverse("api:roles-detail", kwargs={"tenant_slug": "alpha", "pk": pk})


def role_page(pk):
    return reverse("access:role_edit", kwargs={"tenant_slug": "alpha", "pk": pk})


# --- create with is_active -------------------------------------------------------------------------


def test_create_and_clone_with_is_active(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    source = role_named(tenant_a.tenant, "Technician")
    cloned = api.post(roles_url(), {"name": "Dormant copy", "clone_from": source.pk, "is_active": False}, format="json")
    assert cloned.status_code == 201, cloned.content
    assert cloned.json()["is_active"] is False
    created = api.post(roles_url(), {"name": "Dormant", "user_type": "internal", "is_active": False}, format="json")
    assert created.status_code == 201 and created.json()["is_active"] is False
    roles = SecurityRole.objects.for_tenant(tenant_a.tenant)
    assert not roles.get(name="Dormant copy").is_active and not roles.get(name="Dormant").is_active


@pytest.mark.parametrize("clone_from", [0, -1, 2**63, 10**30, "abc"])
def test_clone_from_out_of_range_is_a_validation_error(tenant_a, clone_from):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.post(roles_url(), {"name": "X", "clone_from": clone_from}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


# --- unique names: the database decides the race --------------------------------------------------


def test_a_name_taken_between_check_and_write_is_a_duplicate(tenant_a, monkeypatch):
    """What a concurrent writer does: the check passes, the insert hits the unique constraint."""
    admin = tenant_a.members["admin"]
    services.role_create(actor=admin, name="Racers", user_type="internal", permissions=[])
    monkeypatch.setattr(services, "_ensure_unique_name", lambda **kwargs: None)
    with pytest.raises(ApplicationError) as refused:
        services.role_create(actor=admin, name="Racers", user_type="internal", permissions=[])
    assert refused.value.code == "duplicate" and refused.value.fields == {"name": ["taken"]}
    other = services.role_create(actor=admin, name="Other", user_type="internal", permissions=[])
    with pytest.raises(ApplicationError) as refused:
        services.role_update(actor=admin, role=other, name="Racers")
    assert refused.value.code == "duplicate"
    # The transaction is still usable after the refusal (savepoint).
    assert SecurityRole.objects.for_tenant(tenant_a.tenant).filter(name="Racers").count() == 1

    api = api_client_for(admin.user)
    response = api.post(roles_url(), {"name": "Racers", "user_type": "internal"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "duplicate"


def test_a_company_name_taken_between_check_and_write_is_a_duplicate(tenant_a, monkeypatch):
    admin = tenant_a.members["admin"]
    existing = tenant_a.companies[0]
    real_filter = ClientCompany.objects.for_tenant(tenant_a.tenant).__class__.filter

    def blind_filter(self, *args, **kwargs):  # the check sees nothing, as a concurrent writer's would
        if "name__iexact" in kwargs:
            return self.none()
        return real_filter(self, *args, **kwargs)

    monkeypatch.setattr(ClientCompany.objects.for_tenant(tenant_a.tenant).__class__, "filter", blind_filter)
    with pytest.raises(ApplicationError) as refused:
        tenant_services.company_create(actor=admin, name=existing.name)
    assert refused.value.code == "duplicate"
    with pytest.raises(ApplicationError) as refused:
        tenant_services.company_update(actor=admin, company=tenant_a.companies[1], name=existing.name)
    assert refused.value.code == "duplicate"


def _race(requests):
    """Run the callables at once, one thread each; their results in order."""
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)
    errors: list = []

    def worker(index, request):
        try:
            barrier.wait(timeout=30)
            results[index] = request()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    return results


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("kind", ["roles", "companies"])
def test_concurrent_creations_with_one_name_give_one_201(kind):
    # The test database of SQLite is in memory with a shared cache, whose table locks do not
    # wait: many writing threads need a database server.
    require_service("PostgreSQL", connection.vendor == "postgresql", "threads writing at once need a database server")
    world = build_tenant("alpha", "Alpha MSP")
    url = reverse(f"api:{kind}-list", kwargs={"tenant_slug": "alpha"})
    body = {"name": "Night Shift", "user_type": "internal"} if kind == "roles" else {"name": "Night Shift"}
    clients = [api_client_for(world.members["admin"].user) for _ in range(10)]
    responses = _race([lambda c=c: c.post(url, body, format="json") for c in clients])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [400] * 9, [(r.status_code, r.content[:200]) for r in responses]
    assert all(r.json()["error"]["code"] == "duplicate" for r in responses if r.status_code == 400)
    model = SecurityRole if kind == "roles" else ClientCompany
    assert model.objects.for_tenant(world.tenant).filter(name="Night Shift").count() == 1


# --- no change to a role above oneself --------------------------------------------------------------


@pytest.fixture
def auditors(tenant_a):
    """A custom role holding audit permissions the role manager lacks, held by a user."""
    role = services.role_create(
        actor=tenant_a.members["admin"], name="Auditors", user_type="internal",
        permissions=[Perm.AUDIT_VIEW, Perm.AUDIT_EXPORT, "copilot.summarize"],
    )
    add_member(tenant_a.tenant, "Auditors", email="holder@alpha.test")
    return role


def _unchanged(role, *, name="Auditors", is_active=True):
    role.refresh_from_db()
    assert (role.name, set(role.permissions), role.is_active) == (
        name, {Perm.AUDIT_VIEW, Perm.AUDIT_EXPORT, "copilot.summarize"}, is_active)


@pytest.mark.parametrize("change", [
    {"name": "Renamed"},
    {"permissions": []},
    {"permissions": ["copilot.summarize"]},
    {"description": "anything"},
    {"is_active": False},
])
def test_api_refuses_changes_to_a_role_above_the_actor(tenant_a, user_admin, auditors, change):
    api = api_client_for(user_admin.user)
    response = api.patch(role_url(auditors.pk), change, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "escalation_refused"
    _unchanged(auditors)
    delete = api.delete(role_url(auditors.pk))
    assert delete.status_code == 403 and delete.json()["error"]["code"] == "escalation_refused"
    _unchanged(auditors)


def test_api_refuses_reactivating_a_role_above_the_actor(tenant_a, user_admin, auditors):
    # A held role deactivated before held roles were refused deactivation (issue 14): set directly.
    SecurityRole.objects.for_tenant(tenant_a.tenant).filter(pk=auditors.pk).update(is_active=False)
    api = api_client_for(user_admin.user)
    response = api.patch(role_url(auditors.pk), {"is_active": True}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "escalation_refused"
    _unchanged(auditors, is_active=False)
    # The tenant administrator, who holds all of it, may.
    with pytest.raises(PermissionRefused):
        services.role_update(actor=user_admin, role=auditors, is_active=True)
    services.role_update(actor=tenant_a.members["admin"], role=auditors, is_active=True)
    _unchanged(auditors)


def test_a_role_within_the_actor_can_still_be_changed(tenant_a, user_admin):
    role = services.role_create(actor=user_admin, name="Summarizers", user_type="internal",
                                permissions=["copilot.summarize"])
    api = api_client_for(user_admin.user)
    response = api.patch(role_url(role.pk), {"name": "Writers", "permissions": [], "is_active": False}, format="json")
    assert response.status_code == 200, response.content
    assert api.patch(role_url(role.pk), {"is_active": True}, format="json").status_code == 200
    assert api.delete(role_url(role.pk)).status_code == 204


@pytest.mark.parametrize("post", [
    {"action": "save", "name": "Renamed", "user_type": "internal",
     "permissions": ["audit.view", "audit.export", "copilot.summarize"]},
    {"action": "save", "name": "Auditors", "user_type": "internal", "permissions": []},
    {"action": "deactivate"},
    {"action": "delete"},
])
def test_page_refuses_changes_to_a_role_above_the_actor(client, tenant_a, user_admin, auditors, post):
    client.force_login(user_admin.user)
    response = client.post(role_page(auditors.pk), post)
    assert response.status_code == 200 and "You cannot grant permissions you do not hold" in response.content.decode()
    _unchanged(auditors)


def test_page_refuses_reactivating_a_role_above_the_actor(client, tenant_a, user_admin, auditors):
    # A held role deactivated before held roles were refused deactivation (issue 14): set directly.
    SecurityRole.objects.for_tenant(tenant_a.tenant).filter(pk=auditors.pk).update(is_active=False)
    client.force_login(user_admin.user)
    response = client.post(role_page(auditors.pk), {"action": "activate"})
    assert response.status_code == 200 and "You cannot grant permissions you do not hold" in response.content.decode()
    _unchanged(auditors, is_active=False)

"""Every admin change is attributed: django-auditlog records the actor for changes made in a
browser session, through an API token (known only after DRF authentication) and in a task."""

from auditlog.models import LogEntry
from celery import shared_task
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from tenants.models import ClientCompany, Tenant
from tests.conftest import api_client_for


def entries_for(model, pk):
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model), object_pk=str(pk)).order_by("pk")


def test_session_change_records_actor_and_address(client, tenant_a):
    admin = tenant_a.members["admin"]
    client.force_login(admin.user)
    company = tenant_a.companies[2]
    client.post(reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": company.pk}),
                {"name": company.name, "co_managed": "on"}, REMOTE_ADDR="192.0.2.10")
    entry = entries_for(ClientCompany, company.pk).last()
    assert entry.actor == admin.user and entry.remote_addr == "192.0.2.10"
    assert entry.changes_dict["co_managed"] == ["False", "True"]
    assert entry.additional_data == {"tenant": "alpha"}


def test_token_change_records_actor(tenant_a):
    admin = tenant_a.members["admin"]
    api = api_client_for(admin.user)
    response = api.post(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"}), {"name": "Token Co"}, format="json",
                        REMOTE_ADDR="192.0.2.20")
    entry = entries_for(ClientCompany, response.json()["id"]).get()
    assert entry.actor == admin.user and entry.remote_addr == "192.0.2.20"
    assert entry.action == LogEntry.Action.CREATE


def test_client_address_ignores_spoofed_forwarded_for(tenant_a, settings):
    api = api_client_for(tenant_a.members["admin"].user)
    response = api.post(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"}), {"name": "Spoof Co"}, format="json",
                        REMOTE_ADDR="192.0.2.30", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert entries_for(ClientCompany, response.json()["id"]).get().remote_addr == "192.0.2.30"
    settings.TRUSTED_PROXY_COUNT = 1
    response = api.post(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"}), {"name": "Proxied Co"}, format="json",
                        REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    assert entries_for(ClientCompany, response.json()["id"]).get().remote_addr == "198.51.100.7"


@shared_task
def rename_tenant(*, tenant_id: int, name: str, actor_id: int | None = None) -> None:
    tenant = Tenant.objects.get(pk=tenant_id)
    tenant.name = name
    tenant.save()


def test_task_change_records_enqueuing_actor(tenant_a, operator):
    rename_tenant.apply(kwargs={"tenant_id": tenant_a.tenant.pk, "name": "Renamed", "actor_id": operator.pk})
    entry = entries_for(Tenant, tenant_a.tenant.pk).last()
    assert entry.actor == operator and entry.changes_dict["name"][1] == "Renamed"


def test_task_without_actor_is_the_system(tenant_a, operator):
    rename_tenant.apply(kwargs={"tenant_id": tenant_a.tenant.pk, "name": "By system"})
    entry = entries_for(Tenant, tenant_a.tenant.pk).last()
    assert entry.actor is None and entry.changes_dict["name"][1] == "By system"


def test_role_membership_and_operator_changes_are_logged(tenant_a, operator):
    admin = tenant_a.members["admin"]
    api = api_client_for(admin.user)
    tech = tenant_a.members["tech"]
    api.patch(reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tech.pk}), {"is_active": False}, format="json")
    assert entries_for(type(tech), tech.pk).last().actor == admin.user
    api_client_for(operator).patch(reverse("api:platform-tenants-detail", kwargs={"pk": tenant_a.tenant.pk}),
                                   {"plan": "ops"}, format="json")
    entry = entries_for(Tenant, tenant_a.tenant.pk).last()
    assert entry.actor == operator and entry.changes_dict["plan"] == ["ultimate", "ops"]


def test_password_hash_is_never_logged(tenant_a):
    user = tenant_a.members["tech"].user
    user.set_password("another-password-123")
    user.save()
    for entry in entries_for(type(user), user.pk):
        assert "password" not in entry.changes_dict

"""Issue 14: in the operator console, deactivating a deployment and suspending a tenant ask on a
page of their own what follows (tenants of the zone losing their only deployment; users losing
access). Works without JavaScript; the edit forms save the rest and send to the confirmation."""

import pytest
from django.urls import reverse

from copilot_admin.regions import services
from copilot_admin.regions.models import AzureDeployment
from tenants.models import Membership, Tenant, TenantStatus
from tests.conftest import ROLES


def deployment(operator, zone, **overrides):
    values = {"zone": zone, "name": "confirm-1", "endpoint": "https://east.openai.azure.com", "deployment": "gpt-4o",
              "api_version": "2024-10-21", "auth_mode": "entra_id", "priority": 10}
    values.update(overrides)
    return services.deployment_create(actor=operator, **values)


def deactivate_url(pk):
    return reverse("platform:deployment_deactivate", kwargs={"pk": pk})


def test_deactivating_the_last_deployment_of_a_zone_names_the_tenants_that_lose_it(client, operator, tenant_a):
    zone = tenant_a.tenant.zone
    AzureDeployment.objects.filter(zone=zone).update(active=False)
    last = deployment(operator, zone)
    tenants = Tenant.objects.filter(zone=zone, status=TenantStatus.ACTIVE).count()
    assert tenants >= 1
    client.force_login(operator)
    page = client.get(deactivate_url(last.pk)).content.decode()
    assert "Deactivate the deployment confirm-1?" in page
    assert f"{tenants} tenant{'s' if tenants != 1 else ''} in zone {zone.code.upper()} will lose" in page
    assert "only deployment" in page and "no_deployment_in_zone" in page
    last.refresh_from_db()
    assert last.active  # the page itself changes nothing
    response = client.post(deactivate_url(last.pk))
    assert response.status_code == 302 and response["Location"] == reverse("platform:deployments")
    last.refresh_from_db()
    assert not last.active
    assert client.get(deactivate_url(last.pk)).status_code == 404  # nothing left to deactivate


def test_deactivating_one_of_several_says_the_others_take_the_calls(client, operator, tenant_a):
    zone = tenant_a.tenant.zone
    AzureDeployment.objects.filter(zone=zone).update(active=False)
    first = deployment(operator, zone)
    deployment(operator, zone, name="confirm-2")
    client.force_login(operator)
    page = client.get(deactivate_url(first.pk)).content.decode()
    assert "go to the 1 other active deployment of the zone; no tenant loses the copilot." in page
    assert "will lose" not in page


def test_unticking_active_on_the_edit_form_saves_the_rest_and_asks(client, operator, tenant_a):
    target = deployment(operator, tenant_a.tenant.zone)
    client.force_login(operator)
    form = {"zone": target.zone_id, "name": "confirm-1", "endpoint": "https://east.openai.azure.com",
            "deployment": "gpt-4o", "api_version": "2024-10-21", "auth_mode": "entra_id", "api_key_env": "",
            "priority": 7}  # no "active": the box is unticked
    response = client.post(reverse("platform:deployment_edit", kwargs={"pk": target.pk}), form)
    assert response.status_code == 302 and response["Location"] == deactivate_url(target.pk)
    target.refresh_from_db()
    assert target.priority == 7 and target.active


@pytest.mark.parametrize("actor", [*ROLES, "anonymous"])
def test_only_operators_deactivate_deployments(client, operator, tenant_a, actor):
    target = deployment(operator, tenant_a.tenant.zone)
    if actor != "anonymous":
        client.force_login(tenant_a.members[actor].user)
    expected = 302 if actor == "anonymous" else 404
    assert client.get(deactivate_url(target.pk)).status_code == expected
    assert client.post(deactivate_url(target.pk)).status_code == expected
    target.refresh_from_db()
    assert target.active


def suspend_url(tenant):
    return reverse("platform:tenant_suspend", kwargs={"pk": tenant.pk})


def test_suspending_a_tenant_says_how_many_users_lose_access(client, operator, tenant_a):
    tenant = tenant_a.tenant
    users = Membership.objects.for_tenant(tenant).granting_access().count()
    assert users > 1
    client.force_login(operator)
    page = client.get(suspend_url(tenant)).content.decode()
    assert f"Suspend the tenant {tenant.name}?" in page
    assert f"{users} users lose access to {tenant.name} at once" in page
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.ACTIVE
    response = client.post(suspend_url(tenant))
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.SUSPENDED
    assert client.get(suspend_url(tenant)).status_code == 404  # already suspended


@pytest.mark.parametrize("actor", [*ROLES, "anonymous", "other_tenant_admin"])
def test_only_operators_suspend_tenants(client, tenant_a, tenant_b, actor):
    if actor == "other_tenant_admin":
        client.force_login(tenant_b.members["admin"].user)
    elif actor != "anonymous":
        client.force_login(tenant_a.members[actor].user)
    expected = 302 if actor == "anonymous" else 404
    assert client.get(suspend_url(tenant_a.tenant)).status_code == expected
    assert client.post(suspend_url(tenant_a.tenant)).status_code == expected
    tenant_a.tenant.refresh_from_db()
    assert tenant_a.tenant.status == TenantStatus.ACTIVE

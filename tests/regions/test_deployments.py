"""Azure deployments: operator-only configuration (services, platform API, console pages),
routing order, health, audit, and the tenant's zone page."""

import pytest
from django.urls import reverse

from copilot_admin.copilot.targets import deployments_for_zone
from copilot_admin.core.errors import ApplicationError, PermissionRefused
from copilot_admin.regions import services
from copilot_admin.regions.models import AzureDeployment, DataZone
from tests.audit.conftest import object_entries
from tests.conftest import ROLES, api_client_for
from tests.regions.fixtures import deployment_factory  # noqa: F401

SECRET = "sk-this-value-must-never-be-shown-0123456789"


def create(actor, **overrides):
    values = {
        "zone": DataZone.objects.get(code="us"), "name": "us-east-1", "endpoint": "https://east.openai.azure.com",
        "deployment": "gpt-4o", "api_version": "2024-10-21", "auth_mode": "api_key", "api_key_env": "AZURE_OPENAI_KEY_US",
        "priority": 10,
    }
    values.update(overrides)
    return services.deployment_create(actor=actor, **values)


# --- services ---------------------------------------------------------------------------------------


def test_only_operators_configure_deployments(operator, tenant_a):
    deployment = create(operator)
    admin = tenant_a.members["admin"].user
    with pytest.raises(PermissionRefused):
        create(admin, name="other")
    with pytest.raises(PermissionRefused):
        services.deployment_update(actor=admin, azure_deployment=deployment, active=False)


@pytest.mark.parametrize("overrides,field", [
    ({"endpoint": "http://east.openai.azure.com"}, "endpoint"),  # plain http off loopback
    ({"endpoint": "ftp://east.openai.azure.com"}, "endpoint"),
    ({"endpoint": "https://user:pw@east.openai.azure.com"}, "endpoint"),
    ({"endpoint": "https://east.openai.azure.com/?key=1"}, "endpoint"),
    ({"api_version": "latest"}, "api_version"),
    ({"api_key_env": ""}, "api_key_env"),
    ({"api_key_env": "lower-case"}, "api_key_env"),
    ({"api_key_env": SECRET}, "api_key_env"),  # a key pasted where its variable's name belongs
    ({"api_key_env": "DJANGO_SECRET_KEY"}, "api_key_env"),  # another secret, sent to the endpoint
    ({"api_key_env": "DATABASE_URL"}, "api_key_env"),
    ({"api_key_env": "AZURE_OPENAI_KEY_"}, "api_key_env"),
    ({"api_key_env": "AZURE_OPENAI_KEY_US\n"}, "api_key_env"),
    ({"auth_mode": "password"}, "auth_mode"),
])
def test_validation(operator, overrides, field):
    with pytest.raises(ApplicationError) as refused:
        create(operator, **overrides)
    assert field in refused.value.fields
    assert not AzureDeployment.objects.exists()


def test_loopback_http_entra_id_and_duplicates(operator):
    simulator = create(operator, name="local", endpoint="http://127.0.0.1:8765/")
    assert simulator.endpoint == "http://127.0.0.1:8765"
    entra = create(operator, name="entra", auth_mode="entra_id", api_key_env="IGNORED")
    assert entra.api_key_env == ""
    with pytest.raises(ApplicationError) as duplicate:
        create(operator, name="local")
    assert duplicate.value.code == "duplicate"
    with pytest.raises(ApplicationError):
        services.deployment_update(actor=operator, azure_deployment=entra, name="local")
    with pytest.raises(ApplicationError):
        services.deployment_update(actor=operator, azure_deployment=entra, success_count=5)


def test_routing_order_and_zones(operator):
    eu = DataZone.objects.get(code="eu")
    create(operator, name="us-b", priority=20)
    create(operator, name="us-a", priority=20)
    create(operator, name="us-first", priority=1)
    create(operator, name="us-off", priority=0, active=False)
    create(operator, name="eu-1", zone=eu, priority=0)
    targets = deployments_for_zone(DataZone.objects.get(code="us"))
    assert [t.name for t in targets] == ["us-first", "us-a", "us-b"]
    assert [t.name for t in deployments_for_zone(eu)] == ["eu-1"]
    assert targets[0].api_key_env == "AZURE_OPENAI_KEY_US" and targets[0].endpoint == "https://east.openai.azure.com"


def test_health_record(operator):
    deployment = create(operator)
    assert deployment.healthy is None
    services.deployment_health_record(name=deployment.name, ok=True, latency_ms=100)
    services.deployment_health_record(name=deployment.name, ok=True, latency_ms=200)
    deployment.refresh_from_db()
    assert (deployment.success_count, deployment.last_latency_ms, deployment.healthy) == (2, 200, True)
    assert deployment.latency_ewma_ms == pytest.approx(120.0)
    services.deployment_health_record(name=deployment.name, ok=False, latency_ms=50, failure_code="rate_limited")
    deployment.refresh_from_db()
    assert (deployment.failure_count, deployment.last_failure_code, deployment.healthy) == (1, "rate_limited", False)
    services.deployment_health_record(name="no-such-deployment", ok=True, latency_ms=1)  # ignored


def test_configuration_changes_are_audited_health_is_not(operator):
    deployment = create(operator)
    services.deployment_update(actor=operator, azure_deployment=deployment, priority=5, active=False)
    entries = list(object_entries(deployment))
    assert [e.action for e in entries] == ["deployment.create", "deployment.update"]
    assert entries[1].actor == operator and set(entries[1].changes) == {"priority", "active"}
    assert all(e.tenant_id is None for e in entries)  # a deployment is the platform's
    assert not set(entries[0].changes) & set(AzureDeployment.HEALTH_FIELDS)
    services.deployment_health_record(name=deployment.name, ok=True, latency_ms=10)
    assert object_entries(deployment).count() == 2


def test_tenant_zone_change_is_audited(operator, tenant_a):
    from copilot_admin.platform.services import tenant_update

    tenant_update(actor=operator, tenant=tenant_a.tenant, zone=DataZone.objects.get(code="eu"))
    entry = object_entries(tenant_a.tenant).last()
    assert entry.actor == operator and "zone" in entry.changes and entry.tenant_id == tenant_a.tenant.pk
    with pytest.raises(PermissionRefused):
        tenant_update(actor=tenant_a.members["admin"].user, tenant=tenant_a.tenant, zone=DataZone.objects.get(code="us"))


# --- platform API ---------------------------------------------------------------------------------------


def test_platform_api_create_list_update_never_shows_a_key(operator, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_KEY_US", SECRET)
    api = api_client_for(operator)
    created = api.post(reverse("api:platform-deployments-list"), {
        "zone": "us", "name": "us-east-1", "endpoint": "https://east.openai.azure.com", "deployment": "gpt-4o",
        "api_version": "2024-10-21", "auth_mode": "api_key", "api_key_env": "AZURE_OPENAI_KEY_US", "priority": 10,
        "active": True,
    }, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert {k: body[k] for k in ("zone", "name", "endpoint", "deployment", "api_version", "auth_mode", "api_key_env",
                                 "priority", "active")} == {
        "zone": "us", "name": "us-east-1", "endpoint": "https://east.openai.azure.com", "deployment": "gpt-4o",
        "api_version": "2024-10-21", "auth_mode": "api_key", "api_key_env": "AZURE_OPENAI_KEY_US", "priority": 10,
        "active": True}
    assert body["api_key_configured"] is True and body["healthy"] is None
    detail = reverse("api:platform-deployments-detail", kwargs={"pk": body["id"]})
    patched = api.patch(detail, {"priority": 3, "zone": "eu", "deployment": "gpt-4o-mini", "success_count": 99},
                        format="json").json()
    assert (patched["priority"], patched["zone"], patched["deployment"], patched["success_count"]) == (
        3, "eu", "gpt-4o-mini", 0)
    listed = api.get(reverse("api:platform-deployments-list"))
    assert listed.status_code == 200 and listed.json()["results"][0]["name"] == "us-east-1"
    for response in (created, listed, api.get(detail)):
        assert SECRET not in response.content.decode()


def test_platform_api_validation_errors(operator):
    api = api_client_for(operator)
    url = reverse("api:platform-deployments-list")
    base = {"zone": "us", "name": "x1", "endpoint": "https://e.openai.azure.com", "deployment": "d",
            "api_key_env": "AZURE_OPENAI_KEY_X"}
    assert api.post(url, {**base, "zone": "mars"}, format="json").json()["error"]["fields"].keys() == {"zone"}
    assert "endpoint" in api.post(url, {**base, "endpoint": "http://e.example"}, format="json").json()["error"]["fields"]
    assert api.post(url, base, format="json").status_code == 201
    duplicate = api.post(url, base, format="json")
    assert duplicate.status_code == 400 and duplicate.json()["error"]["code"] == "duplicate"


@pytest.mark.parametrize("variable", ["DJANGO_SECRET_KEY", "DATABASE_URL", "OIDC_CLIENT_SECRET_X"])
def test_platform_api_refuses_key_variables_outside_the_prefix(operator, monkeypatch, variable):
    monkeypatch.setenv("AZURE_OPENAI_KEY_US", SECRET)
    api = api_client_for(operator)
    url = reverse("api:platform-deployments-list")
    base = {"zone": "us", "name": "x1", "endpoint": "https://e.openai.azure.com", "deployment": "d",
            "api_key_env": "AZURE_OPENAI_KEY_US"}
    refused = api.post(url, {**base, "api_key_env": variable}, format="json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["error"]["code"] == "invalid" and set(refused.json()["error"]["fields"]) == {"api_key_env"}
    assert not AzureDeployment.objects.exists()
    created = api.post(url, base, format="json").json()
    detail = reverse("api:platform-deployments-detail", kwargs={"pk": created["id"]})
    refused = api.patch(detail, {"api_key_env": variable}, format="json")
    assert refused.status_code == 400 and set(refused.json()["error"]["fields"]) == {"api_key_env"}
    # Switching an Entra ID deployment to api_key needs an allowed name too.
    entra = api.post(url, {**base, "name": "x2", "auth_mode": "entra_id"}, format="json").json()
    entra_detail = reverse("api:platform-deployments-detail", kwargs={"pk": entra["id"]})
    assert api.patch(entra_detail, {"auth_mode": "api_key"}, format="json").status_code == 400
    assert api.patch(entra_detail, {"auth_mode": "api_key", "api_key_env": variable}, format="json").status_code == 400
    assert AzureDeployment.objects.get(pk=created["id"]).api_key_env == "AZURE_OPENAI_KEY_US"
    assert AzureDeployment.objects.get(pk=entra["id"]).auth_mode == "entra_id"


def test_service_update_refuses_key_variables_outside_the_prefix(operator):
    deployment = create(operator)
    with pytest.raises(ApplicationError) as refused:
        services.deployment_update(actor=operator, azure_deployment=deployment, api_key_env="DJANGO_SECRET_KEY")
    assert set(refused.value.fields) == {"api_key_env"}
    deployment.refresh_from_db()
    assert deployment.api_key_env == "AZURE_OPENAI_KEY_US"


def test_a_stored_name_outside_the_prefix_is_not_reported_on(operator, monkeypatch, client):
    # A name stored before the rule (written around the service) says nothing about the variable.
    monkeypatch.setenv("DJANGO_SECRET_KEY", SECRET)
    deployment = AzureDeployment.objects.create(
        zone=DataZone.objects.get(code="us"), name="old", endpoint="https://e.openai.azure.com", deployment="d",
        api_key_env="DJANGO_SECRET_KEY",
    )
    api = api_client_for(operator)
    body = api.get(reverse("api:platform-deployments-detail", kwargs={"pk": deployment.pk})).json()
    assert body["api_key_configured"] is False
    assert api.get(reverse("api:platform-deployments-list")).json()["results"][0]["api_key_configured"] is False
    client.force_login(operator)
    listing = client.get(reverse("platform:deployments")).content.decode()
    assert "refused" in listing and SECRET not in listing


@pytest.mark.parametrize("actor", [*ROLES, "anonymous"])
def test_platform_deployments_are_operators_only(tenant_a, operator, actor):
    deployment = create(operator)
    user = None if actor == "anonymous" else tenant_a.members[actor].user
    api = api_client_for(user)
    expected = 401 if user is None else 404
    assert api.get(reverse("api:platform-deployments-list")).status_code == expected
    assert api.patch(reverse("api:platform-deployments-detail", kwargs={"pk": deployment.pk}), {"active": False},
                     format="json").status_code == expected
    assert api.post(reverse("api:platform-deployments-list"), {}, format="json").status_code == expected
    deployment.refresh_from_db()
    assert deployment.active


# --- console pages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [*ROLES, "operator", "anonymous"])
def test_console_pages(client, tenant_a, operator, actor):
    deployment = create(operator)
    if actor == "operator":
        client.force_login(operator)
    elif actor != "anonymous":
        client.force_login(tenant_a.members[actor].user)
    for name, kwargs in [("platform:deployments", {}), ("platform:deployment_create", {}),
                         ("platform:deployment_edit", {"pk": deployment.pk})]:
        response = client.get(reverse(name, kwargs=kwargs))
        assert response.status_code == {"operator": 200, "anonymous": 302}.get(actor, 404), (name, actor)


def test_console_create_and_edit(client, operator, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_KEY_US", SECRET)
    client.force_login(operator)
    zone = DataZone.objects.get(code="us")
    form = {"zone": zone.pk, "name": "us-east-1", "endpoint": "https://east.openai.azure.com", "deployment": "gpt-4o",
            "api_version": "2024-10-21", "auth_mode": "api_key", "api_key_env": "AZURE_OPENAI_KEY_US", "priority": 10,
            "active": "on"}
    response = client.post(reverse("platform:deployment_create"), form)
    assert response.status_code == 302
    deployment = AzureDeployment.objects.get(name="us-east-1")
    bad = client.post(reverse("platform:deployment_edit", kwargs={"pk": deployment.pk}), {**form, "endpoint": "http://x.example"})
    assert bad.status_code == 200 and "must use https" in bad.content.decode()
    client.post(reverse("platform:deployment_edit", kwargs={"pk": deployment.pk}), {**form, "priority": 4})
    deployment.refresh_from_db()
    assert deployment.priority == 4 and deployment.active
    services.deployment_health_record(name="us-east-1", ok=False, latency_ms=80, failure_code="server_error")
    listing = client.get(reverse("platform:deployments")).content.decode()
    assert "us-east-1" in listing and "server_error" in listing and SECRET not in listing


def test_console_refuses_key_variables_outside_the_prefix(client, operator):
    client.force_login(operator)
    zone = DataZone.objects.get(code="us")
    form = {"zone": zone.pk, "name": "us-east-1", "endpoint": "https://east.openai.azure.com", "deployment": "gpt-4o",
            "api_version": "2024-10-21", "auth_mode": "api_key", "api_key_env": "DJANGO_SECRET_KEY", "priority": 10,
            "active": "on"}
    response = client.post(reverse("platform:deployment_create"), form)
    assert response.status_code == 200 and "AZURE_OPENAI_KEY_" in response.content.decode()
    assert not AzureDeployment.objects.exists()
    deployment = create(operator)
    response = client.post(reverse("platform:deployment_edit", kwargs={"pk": deployment.pk}), form)
    assert response.status_code == 200
    deployment.refresh_from_db()
    assert deployment.api_key_env == "AZURE_OPENAI_KEY_US"


def test_console_list_query_count_is_flat(client, operator, django_assert_max_num_queries):
    client.force_login(operator)
    create(operator, name="first")
    with django_assert_max_num_queries(12) as captured:
        client.get(reverse("platform:deployments"))
    few = len(captured)
    for n in range(20):
        create(operator, name=f"bulk-{n}")
    with django_assert_max_num_queries(few):
        client.get(reverse("platform:deployments"))


# --- the tenant's zone page -----------------------------------------------------------------------------------


def test_zone_page_shows_own_zone_deployments_without_configuration(client, tenant_a, deployment_factory, operator):
    deployment_factory(zone="us", name="us-serving", endpoint="https://secret-resource.openai.azure.com")
    deployment_factory(zone="eu", name="eu-elsewhere", endpoint="https://eu-resource.openai.azure.com")
    client.force_login(tenant_a.members["admin"].user)
    body = client.get(reverse("regions:zone", kwargs={"tenant_slug": "alpha"})).content.decode()
    assert "us-serving" in body and "eu-elsewhere" not in body
    assert "secret-resource" not in body and "AZURE_OPENAI_KEY_TEST" not in body
    assert 'data-testid="zone-code">us<' in body


def test_zone_page_requires_the_region_permission(client, tenant_a):
    for role in ROLES:
        client.force_login(tenant_a.members[role].user)
        response = client.get(reverse("regions:zone", kwargs={"tenant_slug": "alpha"}))
        assert response.status_code == (200 if role == "admin" else 403), role

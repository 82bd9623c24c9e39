"""Security events in the audit log: logins, failed logins, lockouts, logouts, API tokens,
refusals by a security role, and platform operators on a tenant's pages."""

from django.conf import settings
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from tests.audit.conftest import entries
from tests.conftest import api_client_for
from tests.factories import PASSWORD, add_member

TOKEN_URL = "/api/v1/auth/token/"


def login(client, email, password=PASSWORD, ip="198.51.100.1"):
    return client.post("/login/", {"username": email, "password": password}, REMOTE_ADDR=ip)


def test_login_and_logout_are_recorded_in_the_users_tenant(tenant_a, tenant_b):
    client = Client()
    login(client, "tech@alpha.test", ip="198.51.100.7")
    client.post("/logout/", REMOTE_ADDR="198.51.100.7")
    tech = tenant_a.members["tech"].user
    logged_in = entries(tenant_a, action="auth.login").get()
    assert logged_in.actor_id == tech.pk and logged_in.remote_addr == "198.51.100.7" and logged_in.outcome == "success"
    assert entries(tenant_a, action="auth.logout").get().actor_id == tech.pk
    assert not entries(tenant_b, action__startswith="auth.").exists()


def test_failed_login_of_a_known_account_is_recorded_without_the_password(tenant_a):
    login(Client(), "tech@alpha.test", "wrong-password-canary", ip="198.51.100.8")
    failed = entries(tenant_a, action="auth.login_failed").get()
    assert failed.outcome == "failure" and failed.actor_type == "anonymous" and failed.actor_id is None
    assert failed.object_id == str(tenant_a.members["tech"].user.pk) and failed.remote_addr == "198.51.100.8"
    assert "canary" not in str(entries(tenant_a).values_list())


def test_failed_login_of_an_unknown_account_keeps_nothing_typed(db):
    login(Client(), "typo-or-a-password@nowhere.test", "x", ip="198.51.100.9")
    failed = entries(None, action="auth.login_failed").get()
    assert failed.metadata["account"] == "unknown" and failed.remote_addr == "198.51.100.9"
    assert "typo-or-a-password" not in str(entries(None).values_list())


def test_lockout_is_recorded(tenant_a):
    """The lockout of the (account, address) pair, with that address; failures spread over
    addresses lock nothing (they slow the account down instead)."""
    for i in range(settings.AXES_FAILURE_LIMIT):
        login(Client(), "admin@alpha.test", "wrong", ip=f"198.51.100.{20 + i}")
    assert not entries(tenant_a, action="auth.lockout").exists()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(Client(), "tech@alpha.test", "wrong", ip="198.51.100.30")
    lockout = entries(tenant_a, action="auth.lockout").get()
    assert lockout.outcome == "denied" and lockout.object_id == str(tenant_a.members["tech"].user.pk)
    assert lockout.remote_addr == "198.51.100.30"


def test_token_creation_and_revocation_are_recorded_without_the_secret(tenant_a):
    api = APIClient()
    response = api.post(TOKEN_URL, {"email": "admin@alpha.test", "password": PASSWORD}, format="json",
                        REMOTE_ADDR="198.51.100.30")
    token = response.json()["token"]
    created = entries(tenant_a, action="auth.token_create").get()
    assert created.actor_id == tenant_a.members["admin"].user.pk and created.remote_addr == "198.51.100.30"
    assert created.object_id and token.startswith(created.object_id)
    assert token not in str(entries(tenant_a).values_list())
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.delete(TOKEN_URL, REMOTE_ADDR="198.51.100.31").status_code == 204
    revoked = entries(tenant_a, action="auth.token_revoke").get()
    assert revoked.object_id == created.object_id and revoked.actor_id == created.actor_id
    assert revoked.remote_addr == "198.51.100.31"


def test_user_events_are_recorded_in_each_of_the_users_tenants(tenant_a, tenant_b):
    user = tenant_a.members["tech"].user
    add_member(tenant_b.tenant, "Technician", email=user.email)
    login(Client(), user.email)
    assert entries(tenant_a, action="auth.login").count() == entries(tenant_b, action="auth.login").count() == 1


def test_operator_login_goes_to_the_platform_chain(operator):
    login(Client(), operator.email)
    entry = entries(None, action="auth.login").get()
    assert entry.actor_type == "operator" and entry.actor_id == operator.pk


def test_page_refused_by_the_security_role_is_recorded(client, tenant_a):
    tech = tenant_a.members["tech"]
    client.force_login(tech.user)
    response = client.get(reverse("directory:users", kwargs={"tenant_slug": "alpha"}), REMOTE_ADDR="198.51.100.40")
    assert response.status_code == 403
    denied = entries(tenant_a, action="access.denied").get()
    assert denied.actor_id == tech.user.pk and denied.outcome == "denied" and denied.remote_addr == "198.51.100.40"
    assert denied.object_id == "directory:users" and denied.metadata["permission"] == "admin.users"


def test_api_refusal_and_escalation_refusal_are_recorded(tenant_a):
    from copilot_admin.access.models import SecurityRole

    tech = tenant_a.members["tech"]
    response = api_client_for(tech.user).post(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"}),
                                              {"name": "Nope"}, format="json")
    assert response.status_code == 403
    denied = entries(tenant_a, action="access.denied").get()
    assert denied.object_id == "api:companies-list" and denied.metadata["method"] == "POST"
    # A user manager without the role permission cannot hand out a role holding it.
    limited = SecurityRole.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, name="User manager", permissions=["admin.users"])
    manager = add_member(tenant_a.tenant, "User manager", email="manager@alpha.test")
    admin_role = SecurityRole.objects.for_tenant(tenant_a.tenant).get(name="Tenant Administrator")
    response = api_client_for(manager.user).patch(
        reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tenant_a.members["tech"].pk}),
        {"role": admin_role.pk}, format="json")
    assert response.status_code == 403 and limited.pk
    escalation = entries(tenant_a, action="access.denied", actor_id=manager.user.pk).get()
    assert escalation.metadata["code"] == "escalation_refused"


def test_operator_on_a_tenant_page_is_recorded_in_that_tenant(client, tenant_a, operator):
    add_member(tenant_a.tenant, "Tenant Administrator", email=operator.email)
    client.force_login(operator)
    assert client.get(reverse("directory:overview", kwargs={"tenant_slug": "alpha"})).status_code == 200
    access = entries(tenant_a, action="operator.tenant_access").get()
    assert access.actor_id == operator.pk and access.actor_type == "operator" and access.object_id == "directory:overview"

"""Who acted is the actor a service is given, and nothing else: not django-auditlog's actor
context, not the request's user, not the task's enqueuer. A session, a token, a task and a
shell each pass their actor to the service, and that actor is what the entry records."""

from auditlog.context import set_actor
from auditlog.registry import auditlog
from django.urls import reverse

from copilot_admin.audit.services import audit_event_record
from copilot_admin.core.context import audit_scope
from copilot_admin.directory import services as directory
from copilot_admin.usage import abuse
from copilot_admin.usage.models import StrikeKind
from tests.audit.conftest import entries
from tests.conftest import api_client_for
from tests.factories import PASSWORD


def test_no_model_is_registered_with_django_auditlog(db):
    """django-auditlog computes diffs only: no signal of it writes an entry of its own."""
    assert auditlog.get_models() == []


def test_the_services_actor_is_recorded_whatever_actor_django_auditlog_holds(tenant_a, operator):
    admin = tenant_a.members["admin"]
    with set_actor(operator, remote_addr="203.0.113.66"):
        directory.company_update(actor=admin, company=tenant_a.companies[2], co_managed=True)
        system = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.system")
    change = entries(tenant_a, action="company.update").get()
    assert change.actor_id == admin.user.pk and change.actor_email == "admin@alpha.test"
    assert change.remote_addr != "203.0.113.66"
    system.refresh_from_db()
    assert system.actor_id is None and system.actor_type == "system" and system.actor_email == ""


def test_the_services_actor_is_recorded_whatever_request_is_in_progress(tenant_a):
    """A request scope says where a change came from, never who made it."""
    tech, admin = tenant_a.members["tech"], tenant_a.members["admin"]
    with audit_scope(tenant=tenant_a.tenant, channel="web", remote_addr="198.51.100.5", correlation_id="c" * 32):
        directory.company_update(actor=admin, company=tenant_a.companies[2], name="Renamed Three")
    change = entries(tenant_a, action="company.update").get()
    assert change.actor_id == admin.user.pk and change.actor_id != tech.user.pk
    assert (change.remote_addr, change.correlation_id, change.metadata["via"]) == ("198.51.100.5", "c" * 32, "web")


def test_automatic_transitions_inside_a_users_request_are_the_systems(tenant_a):
    """The abuse rules act as the system (their `actor` is None) even while a user's request,
    with that user in every context, is in progress."""
    tech = tenant_a.members["tech"]
    with set_actor(tech.user), audit_scope(tenant=tenant_a.tenant, channel="api"):
        abuse.strike_record(membership=tech, kind=StrikeKind.HARD_LIMIT, limit="user_requests_per_minute")
    created = entries(tenant_a, action="copilot_access.create").get()
    assert created.actor_id is None and created.actor_type == "system" and created.metadata["via"] == "api"


def test_session_change_records_actor_and_address(client, tenant_a):
    admin = tenant_a.members["admin"]
    client.force_login(admin.user)
    company = tenant_a.companies[2]
    client.post(reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": company.pk}),
                {"name": company.name, "co_managed": "on"}, REMOTE_ADDR="192.0.2.10")
    entry = entries(tenant_a, action="company.update", object_id=str(company.pk)).get()
    assert entry.actor == admin.user and entry.remote_addr == "192.0.2.10"
    assert entry.changes["co_managed"] == ["off", "on"] and entry.content_type.model == "clientcompany"
    assert entry.metadata["raw"]["co_managed"] == ["False", "True"]


def test_token_change_records_actor(tenant_a):
    admin = tenant_a.members["admin"]
    api = api_client_for(admin.user)
    response = api.post(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"}), {"name": "Token Co"},
                        format="json", REMOTE_ADDR="192.0.2.20")
    entry = entries(tenant_a, action="company.create", object_id=str(response.json()["id"])).get()
    assert entry.actor == admin.user and entry.remote_addr == "192.0.2.20"


def test_client_address_ignores_spoofed_forwarded_for(tenant_a, settings):
    api = api_client_for(tenant_a.members["admin"].user)
    url = reverse("api:companies-list", kwargs={"tenant_slug": "alpha"})
    response = api.post(url, {"name": "Spoof Co"}, format="json", REMOTE_ADDR="192.0.2.30",
                        HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert entries(tenant_a, action="company.create", object_id=str(response.json()["id"])).get().remote_addr == (
        "192.0.2.30")
    settings.TRUSTED_PROXY_COUNT = 1
    response = api.post(url, {"name": "Proxied Co"}, format="json", REMOTE_ADDR="10.0.0.2",
                        HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    assert entries(tenant_a, action="company.create", object_id=str(response.json()["id"])).get().remote_addr == (
        "198.51.100.7")


def test_role_membership_and_operator_changes_are_logged(tenant_a, operator):
    admin = tenant_a.members["admin"]
    api = api_client_for(admin.user)
    tech = tenant_a.members["tech"]
    api.patch(reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tech.pk}), {"is_active": False},
              format="json")
    assert entries(tenant_a, action="membership.update", object_id=str(tech.pk)).last().actor == admin.user
    api_client_for(operator).patch(reverse("api:platform-tenants-detail", kwargs={"pk": tenant_a.tenant.pk}),
                                   {"plan": "ops"}, format="json")
    entry = entries(tenant_a, action="tenant.update").last()
    assert entry.actor == operator and entry.changes["plan"] == ["Ultimate", "Ops"]


def test_password_hash_and_login_time_are_never_logged(tenant_a, client):
    user = tenant_a.members["tech"].user
    directory.account_update(actor=user, user=user, full_name="Renamed Tech")
    client.post("/login/", {"username": user.email, "password": PASSWORD})  # sets last_login
    for entry in entries(None, object_type="user"):
        assert "password" not in entry.changes and "last_login" not in entry.changes
    assert entries(None, action="user.update").get().changes == {"full_name": ["Alpha MSP tech", "Renamed Tech"]}

"""Every service that takes an actor checks the permission it needs itself, through the policy
function, so a task, a command or a new adapter cannot skip what the base classes check early.

`TABLE` names each public function with an `actor` parameter in the services modules of
copilot_admin (introspected: a new one missing here fails the suite), the permission it needs,
and a real call. Each call is proven to work for an actor holding the permission and to be
refused (`PermissionRefused`, 403 in the API) for actors lacking it: a member whose role does
not grant it, a user where a membership is needed and a membership where a platform operator
is needed; a member of another tenant gets `NotFound` (foreign and missing alike).
"""

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

import copilot_admin
from copilot_admin.access import services as access_services
from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm, PlatformPerm
from copilot_admin.audit import services as audit_services
from copilot_admin.compliance import review_services
from copilot_admin.compliance import services as compliance_services
from copilot_admin.compliance.models import ReviewCampaign
from copilot_admin.copilot import settings_services
from copilot_admin.core.errors import NotFound, PermissionRefused, api_exception_handler
from copilot_admin.directory import services as directory_services
from copilot_admin.identity import services as identity_services
from copilot_admin.identity import sso_services
from copilot_admin.identity.models import SsoDomain
from copilot_admin.platform import services as platform_services
from copilot_admin.regions import services as region_services
from copilot_admin.regions.models import DataZone
from copilot_admin.usage import services as usage_services
from copilot_admin.usage import webhook_services
from tests.cross.routes import object_pk
from tests.factories import add_member, role_named

OWNER = "the account's owner"
GRANTS = "every permission it grants"


def _services_modules():
    """copilot_admin's services modules: `<room>/services.py` and `<room>/*_services.py`."""
    for info in pkgutil.walk_packages(copilot_admin.__path__, "copilot_admin."):
        last = info.name.rsplit(".", 1)[-1]
        if last == "services" or last.endswith("_services"):
            yield importlib.import_module(info.name)


def services_taking_an_actor() -> set[str]:
    """`<room>.<function>` of every public function with an `actor` parameter defined in its room."""
    found = set()
    for module in _services_modules():
        room = module.__name__.split(".")[1]
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function):
                continue
            if not function.__module__.startswith(f"copilot_admin.{room}."):
                continue  # imported from another room: that room's row covers it
            if function.__module__ == "copilot_admin.access.policy":
                continue  # the policy function itself
            if "actor" in inspect.signature(function).parameters:
                found.add(f"{room}.{function.__name__}")
    return found


@dataclass(frozen=True)
class Row:
    permission: object
    call: object  # (world, actor) -> the service's answer


TABLE = {
    "access.ensure_can_grant": Row(GRANTS, lambda w, a: access_services.ensure_can_grant(
        actor=a, permissions=[Perm.USERS])),
    "access.role_create": Row(Perm.ROLES, lambda w, a: access_services.role_create(
        actor=a, name="Night shift", user_type="internal", permissions=[])),
    "access.role_clone": Row(Perm.ROLES, lambda w, a: access_services.role_clone(
        actor=a, source=w.role, name="Day shift")),
    "access.role_update": Row(Perm.ROLES, lambda w, a: access_services.role_update(
        actor=a, role=w.role, description="Summaries only")),
    "access.role_delete": Row(Perm.ROLES, lambda w, a: access_services.role_delete(actor=a, role=w.role)),
    "copilot.tenant_copilot_settings_update": Row(Perm.COPILOT_SETTINGS, lambda w, a: (
        settings_services.tenant_copilot_settings_update(actor=a, copilot_enabled=False))),
    "directory.company_create": Row(Perm.COMPANIES, lambda w, a: directory_services.company_create(
        actor=a, name="Fourth Coffee")),
    "directory.company_update": Row(Perm.COMPANIES, lambda w, a: directory_services.company_update(
        actor=a, company=w.company, name="Renamed Co")),
    "directory.company_delete": Row(Perm.COMPANIES, lambda w, a: directory_services.company_delete(
        actor=a, company=w.tenant_a.companies[2])),
    "directory.membership_bulk_apply": Row(Perm.USERS, lambda w, a: directory_services.membership_bulk_apply(
        actor=a, membership_ids=[w.tech.pk], action="deactivate")),
    "directory.membership_create": Row(Perm.USERS, lambda w, a: directory_services.membership_create(
        actor=a, tenant=w.tenant, email="new@alpha.test", user_type="internal",
        role=role_named(w.tenant, "Technician"))),
    "directory.membership_update": Row(Perm.USERS, lambda w, a: directory_services.membership_update(
        actor=a, membership=w.tech, is_active=False)),
    "directory.invitation_resend": Row(Perm.USERS, lambda w, a: directory_services.invitation_resend(
        actor=a, membership=w.pending)),
    "directory.invitation_revoke": Row(Perm.USERS, lambda w, a: directory_services.invitation_revoke(
        actor=a, membership=w.pending)),
    "directory.tenant_admin_invite": Row(PlatformPerm.OPERATOR, lambda w, a: directory_services.tenant_admin_invite(
        actor=a, tenant=w.tenant, email="second-admin@alpha.test")),
    "directory.tenant_admin_invitation_resend": Row(PlatformPerm.OPERATOR, lambda w, a: (
        directory_services.tenant_admin_invitation_resend(actor=a, membership=w.pending))),
    "directory.account_update": Row(OWNER, lambda w, a: directory_services.account_update(
        actor=a, user=w.owner, full_name="Ana Ruiz")),
    "directory.account_time_zone_update": Row(OWNER, lambda w, a: directory_services.account_time_zone_update(
        actor=a, user=w.owner, time_zone="Europe/Berlin")),
    "access.roles_seed_system": Row(PlatformPerm.OPERATOR, lambda w, a: access_services.roles_seed_system(
        actor=a, tenant=w.tenant)),
    "platform.tenant_create": Row(PlatformPerm.OPERATOR, lambda w, a: platform_services.tenant_create(
        actor=a, name="Woodgrove", slug="woodgrove", plan="ultimate", zone=DataZone.objects.get(code="us"))),
    "platform.tenant_update": Row(PlatformPerm.OPERATOR, lambda w, a: platform_services.tenant_update(
        actor=a, tenant=w.tenant, name="Alpha Renamed")),
    "regions.deployment_create": Row(PlatformPerm.OPERATOR, lambda w, a: region_services.deployment_create(
        actor=a, zone=DataZone.objects.get(code="us"), name="us-new", endpoint="https://us.example.test",
        deployment="gpt", api_key_env="AZURE_OPENAI_KEY_US")),
    "regions.deployment_update": Row(PlatformPerm.OPERATOR, lambda w, a: region_services.deployment_update(
        actor=a, azure_deployment=w.deployment, priority=5)),
    "usage.tenant_limits_update": Row(Perm.LIMITS, lambda w, a: usage_services.tenant_limits_update(
        actor=a, changes={"user_requests_per_minute": 5})),
    "usage.platform_limits_update": Row(PlatformPerm.OPERATOR, lambda w, a: usage_services.platform_limits_update(
        actor=a, changes={"user_requests_per_minute": 50})),
    "usage.case_reinstate": Row((Perm.LIMITS, PlatformPerm.OPERATOR), lambda w, a: usage_services.case_reinstate(
        actor=a, case=w.case, reason="Talked to the user")),
    "usage.case_terminate": Row((Perm.LIMITS, PlatformPerm.OPERATOR), lambda w, a: usage_services.case_terminate(
        actor=a, case=w.case, reason="Repeated abuse")),
    "usage.case_dismiss": Row((Perm.LIMITS, PlatformPerm.OPERATOR), lambda w, a: usage_services.case_dismiss(
        actor=a, case=w.case, reason="False alarm")),
    "usage.webhook_create": Row(Perm.LIMITS, lambda w, a: webhook_services.webhook_create(
        actor=a, url="https://8.8.8.8/hook", events=["abuse.case_opened"])),
    "usage.webhook_update": Row(Perm.LIMITS, lambda w, a: webhook_services.webhook_update(
        actor=a, webhook=w.webhook, events=["usage.limit_warning"])),
    "usage.webhook_delete": Row(Perm.LIMITS, lambda w, a: webhook_services.webhook_delete(
        actor=a, webhook=w.webhook)),
    "usage.webhook_test_send": Row(Perm.LIMITS, lambda w, a: webhook_services.webhook_test_send(
        actor=a, webhook=w.webhook)),
    "identity.integration_key_create": Row(Perm.INTEGRATIONS, lambda w, a: identity_services.integration_key_create(
        actor=a, name="PSA server", scopes=["copilot"])),
    "identity.integration_key_revoke": Row(Perm.INTEGRATIONS, lambda w, a: identity_services.integration_key_revoke(
        actor=a, key=w.key)),
    "compliance.audit_export_start": Row(Perm.AUDIT_EXPORT, lambda w, a: compliance_services.audit_export_start(
        actor=a, filters={}, fmt="csv")),
    # The platform auditor grant, which every operator holds: an operator may, a member or user may not.
    "compliance.platform_audit_export_start": Row(PlatformPerm.OPERATOR, lambda w, a: (
        compliance_services.platform_audit_export_start(actor=a, filters={}, fmt="csv"))),
    "identity.sso_configuration_update": Row(Perm.IDENTITY, lambda w, a: sso_services.sso_configuration_update(
        actor=a, email_domains=["alpha.test"], enforced=False)),
    "identity.sso_domain_decide": Row(PlatformPerm.OPERATOR, lambda w, a: sso_services.sso_domain_decide(
        actor=a, domain_id=_sso_claim(w), approve=True)),
    "compliance.campaign_start": Row(Perm.AUDIT_VIEW, lambda w, a: review_services.campaign_start(
        actor=a, name="Q4 review")),
    "compliance.campaign_item_decide": Row(Perm.USERS, lambda w, a: review_services.campaign_item_decide(
        actor=a, item=_review_item(w, "tech@alpha.test"), decision="confirmed")),
    "compliance.campaign_complete": Row(Perm.AUDIT_VIEW, lambda w, a: review_services.campaign_complete(
        actor=a, campaign=ReviewCampaign.objects.for_tenant(w.tenant).create(tenant=w.tenant, name="Empty"))),
    "compliance.campaign_export_start": Row(Perm.AUDIT_EXPORT, lambda w, a: review_services.campaign_export_start(
        actor=a, campaign=ReviewCampaign.objects.for_tenant(w.tenant).create(tenant=w.tenant, name="Export"))),
    # audit/ sits below access/ in the layers: these operator-only functions check the
    # operator flag themselves (they cannot import the policy function); proven all the same.
    "audit.audit_retention_set": Row(PlatformPerm.OPERATOR, lambda w, a: audit_services.audit_retention_set(
        actor=a, tenant=w.tenant, days=400)),
    "audit.platform_auditor_grant": Row(PlatformPerm.OPERATOR, lambda w, a: audit_services.platform_auditor_grant(
        actor=a, user=w.owner)),
    "audit.platform_auditor_revoke": Row(PlatformPerm.OPERATOR, lambda w, a: audit_services.platform_auditor_revoke(
        actor=a, user=w.owner)),
}

def _sso_claim(world) -> int:
    """A pending claim of the world's tenant on a domain (for the operator's decision)."""
    claims = SsoDomain.objects.for_tenant(world.tenant)
    return (claims.filter(domain="claimed.test").first() or claims.create(tenant=world.tenant, domain="claimed.test")).pk
def _review_item(world, email):
    """An item of a fresh review campaign (started by the tenant's administrator)."""
    campaign = review_services.campaign_start(actor=world.admin, name="Service table")
    return campaign.items.get(email=email)


# Functions that take an `actor` only to record it: the recorder (audit/) writes the actor it is
# given, whoever checked the permission before.
RECORDERS = {
    "audit.audit_event_record": "records an event with the actor it is given",
    "audit.audit_change_record": "records a model change with the actor its service was given",
    "audit.audit_m2m_change_record": "records a relation change with the actor its service was given",
    "audit.queryset_update_audited": "records a bulk update with the actor it is given",
    "audit.audit_export_open": "the recorder's export; compliance.audit_export_start checks audit.export first",
    "audit.audit_export_across_open": "the recorder's export across tenants; "
                                      "compliance.platform_audit_export_start checks the platform auditor grant first",
}


@pytest.fixture
def world(tenant_a, operator, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_KEY_US", "test-key-not-a-secret")
    tenant = tenant_a.tenant
    role = SecurityRole.objects.for_tenant(tenant).create(
        tenant=tenant, name="Summaries", user_type="internal", permissions=["copilot.summarize"])
    deployment = region_services.deployment_create(
        actor=None, zone=DataZone.objects.get(code="us"), name="us-primary", endpoint="https://us.example.test",
        deployment="gpt", api_key_env="AZURE_OPENAI_KEY_US")
    from copilot_admin.usage.models import AbuseCase, Webhook

    return SimpleNamespace(
        tenant_a=tenant_a, tenant=tenant, role=role, company=tenant_a.companies[0], tech=tenant_a.members["tech"],
        pending=add_member(tenant, "Technician", email="pending@alpha.test", accepted=False),
        owner=tenant_a.members["auditor"].user, deployment=deployment,
        case=AbuseCase.objects.for_tenant(tenant).get(pk=object_pk("abuse_case", tenant_a)),
        admin=tenant_a.members["admin"], operator=operator,
        webhook=Webhook.objects.for_tenant(tenant).get(pk=object_pk("webhook", tenant_a)),
        key=identity_services.integration_key_create(actor=tenant_a.members["admin"], name="PSA", scopes=["read"])[0],
    )


def _alternatives(permission) -> tuple:
    return permission if isinstance(permission, tuple) else (permission,)


def allowed_actor(world, row):
    """An actor holding the row's permission."""
    if row.permission == OWNER:
        return world.owner
    if PlatformPerm.OPERATOR in _alternatives(row.permission) and not isinstance(row.permission, tuple):
        return world.operator
    return world.admin


def lacking_actors(world, row) -> dict:
    """Actors that do not hold the row's permission, by what they are."""
    if row.permission == OWNER:
        return {"another user": world.tech.user}
    wanted = _alternatives(row.permission)
    actors = {}
    if any(p != PlatformPerm.OPERATOR for p in wanted):
        actors["a member whose role lacks it"] = world.tech
        actors["a user, not a membership"] = world.admin.user
    if PlatformPerm.OPERATOR in wanted:
        actors["a user who is not an operator"] = world.admin.user
    if wanted == (PlatformPerm.OPERATOR,):
        actors["a membership, even an administrator's"] = world.admin
    return actors


def test_the_table_covers_every_service_taking_an_actor():
    found = services_taking_an_actor()
    assert found - set(TABLE) - set(RECORDERS) == set(), "services with an actor missing from TABLE"
    assert (set(TABLE) | set(RECORDERS)) - found == set(), "stale rows"


@pytest.mark.parametrize("name", sorted(TABLE))
def test_the_call_works_for_an_actor_holding_the_permission(world, name):
    """Each call in the table is a real one: a refusal below is the permission's, nothing else."""
    row = TABLE[name]
    row.call(world, allowed_actor(world, row))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_an_actor_lacking_the_permission_is_refused(world, name):
    row = TABLE[name]
    for what, actor in lacking_actors(world, row).items():
        with pytest.raises(PermissionRefused) as refused:
            row.call(world, actor)
        expected = "escalation_refused" if row.permission == GRANTS else "permission_denied"
        assert refused.value.code == expected, (name, what)
        assert api_exception_handler(refused.value, {}).status_code == 403


# Services handed an object of a tenant (or the tenant itself).
TAKES_A_TENANTS_OBJECT = (
    "access.role_clone", "access.role_update", "access.role_delete", "directory.company_update",
    "directory.company_delete", "directory.membership_bulk_apply",
    "directory.membership_create", "directory.membership_update", "directory.invitation_resend",
    "usage.case_reinstate", "usage.case_terminate", "usage.case_dismiss", "identity.integration_key_revoke",
    "usage.webhook_update", "usage.webhook_delete", "usage.webhook_test_send",
    "compliance.campaign_item_decide", "compliance.campaign_complete", "compliance.campaign_export_start",
)


@pytest.mark.parametrize("name", TAKES_A_TENANTS_OBJECT)
def test_a_member_of_another_tenant_gets_not_found(world, tenant_b, name):
    """An administrator of another tenant, holding the permission there: alpha's object is
    not found for it (foreign and missing alike)."""
    with pytest.raises(NotFound):
        TABLE[name].call(world, tenant_b.members["admin"])

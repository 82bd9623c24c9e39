"""What the audit log records: model changes with the actor their service was given
(session, token, task, system), explicit events (copilot calls: metadata only), bulk
changes, and the chain links the sealer writes between entries."""

import pytest
from celery import shared_task
from django.urls import reverse

from copilot_admin.audit.chain import entry_hash
from copilot_admin.audit.models import GENESIS_HASH, AuditChainHead, AuditEntry
from copilot_admin.audit.services import audit_event_record, audit_seal, queryset_update_audited
from copilot_admin.directory import services as directory
from copilot_admin.platform.services import tenant_update
from tenants.models import Membership, Tenant, User
from tenants.scoping import TenantScopeRequired
from tests.audit.conftest import entries
from tests.conftest import api_client_for
from tests.factories import role_named


def test_entries_cannot_be_read_without_naming_a_chain(db):
    with pytest.raises(TenantScopeRequired):
        AuditEntry.objects.all()
    with pytest.raises(TenantScopeRequired):
        AuditEntry.objects.for_tenant(None)


def test_copilot_call_is_recorded_with_metadata_only(tenant_a):
    tech = tenant_a.members["tech"]
    entry = audit_event_record(
        tenant=tenant_a.tenant, actor=tech.user, action="copilot.call", object_type="copilot.feature",
        object_id="summarize", outcome="success",
        metadata={"feature": "summarize", "zone": "us", "deployment": "us-east", "prompt_tokens": 120,
                  "completion_tokens": 40, "latency_ms": 812, "request_id": "req-1",
                  "prompt": "the ticket text must never be kept", "issue": {"summary": "secret"}},
    )
    entry.refresh_from_db()
    assert entry.tenant_id == tenant_a.tenant.pk and entry.actor_id == tech.user.pk
    assert entry.actor_email == tech.user.email and entry.actor_type == "user"
    assert entry.metadata == {"feature": "summarize", "zone": "us", "deployment": "us-east", "prompt_tokens": 120,
                              "completion_tokens": 40, "latency_ms": 812, "request_id": "req-1"}
    assert "never be kept" not in str(AuditEntry.objects.for_tenant(tenant_a.tenant).values_list())


def test_event_without_actor_is_the_system_and_platform_events_have_their_own_chain(db):
    entry = audit_event_record(tenant=None, actor=None, action="platform.maintenance")
    assert entry.actor_type == "system" and entry.tenant_id is None and entry.seq is None  # sealed later
    assert list(entries(None)) == [entry]
    entry.refresh_from_db()
    assert entry.seq == 1


def test_entries_chain_by_hash_per_tenant(tenant_a, tenant_b):
    first = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.one")
    other = audit_event_record(tenant=tenant_b.tenant, actor=None, action="test.other")
    second = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.two")
    audit_seal()
    for entry in (first, other, second):
        entry.refresh_from_db()
    assert second.seq == first.seq + 1 and second.prev_hash == first.hash
    assert other.prev_hash != first.hash
    chain = list(entries(tenant_a).values())
    assert chain[0]["prev_hash"] == GENESIS_HASH and [e["seq"] for e in chain] == list(range(1, len(chain) + 1))
    for previous, current in zip(chain, chain[1:]):
        assert current["prev_hash"] == previous["hash"]
    assert all(entry_hash(e) == e["hash"] for e in chain)
    head = AuditChainHead.objects.get(chain=f"tenant:{tenant_a.tenant.pk}")
    assert (head.seq, head.hash) == (chain[-1]["seq"], chain[-1]["hash"])


def test_session_change_is_recorded_with_actor_address_changes_and_tenant(client, tenant_a):
    admin = tenant_a.members["admin"]
    client.force_login(admin.user)
    company = tenant_a.companies[2]
    client.post(reverse("directory:company_edit", kwargs={"tenant_slug": "alpha", "pk": company.pk}),
                {"name": company.name, "co_managed": "on"}, REMOTE_ADDR="192.0.2.10")
    entry = entries(tenant_a, action="company.update", object_id=str(company.pk)).last()
    assert entry.actor_id == admin.user.pk and entry.actor_type == "user" and entry.remote_addr == "192.0.2.10"
    assert entry.changes == {"co_managed": ["off", "on"]}
    assert entry.metadata["via"] == "web" and entry.correlation_id


def test_token_change_is_recorded_with_actor(tenant_a):
    admin = tenant_a.members["admin"]
    response = api_client_for(admin.user).post(reverse("api:companies-list", kwargs={"tenant_slug": "alpha"}),
                                               {"name": "Token Co"}, format="json", REMOTE_ADDR="192.0.2.20",
                                               HTTP_X_REQUEST_ID="req-abc-123")
    entry = entries(tenant_a, action="company.create", object_id=str(response.json()["id"])).get()
    assert entry.actor_id == admin.user.pk and entry.remote_addr == "192.0.2.20"
    assert entry.metadata["via"] == "api" and entry.metadata["client_request_id"] == "req-abc-123"
    assert entry.correlation_id and entry.correlation_id != "req-abc-123"  # ours, never the client's
    assert entry.object_repr == "Token Co" and entry.changes["name"] == [None, "Token Co"]


@shared_task
def rename_tenant(*, tenant_id: int, name: str, actor_id: int) -> None:
    """A task loads its actor by id and passes it to the service it calls."""
    tenant_update(actor=User.objects.get(pk=actor_id), tenant=Tenant.objects.get(pk=tenant_id), name=name)


@shared_task
def invite_by_the_system(*, tenant_id: int, email: str) -> None:
    tenant = Tenant.objects.get(pk=tenant_id)
    directory.membership_create(actor=None, tenant=tenant, email=email, user_type="internal",
                                role=role_named(tenant, "Technician"), send_invite=False)


def test_task_change_is_recorded_with_the_actor_it_passes(tenant_a, operator):
    result = rename_tenant.apply(kwargs={"tenant_id": tenant_a.tenant.pk, "name": "Renamed", "actor_id": operator.pk})
    entry = entries(tenant_a, action="tenant.update").last()
    assert entry.actor_id == operator.pk and entry.actor_type == "operator"
    assert entry.metadata["via"] == "task" and entry.correlation_id == result.id[:64]
    assert entry.changes["name"] == ["Alpha MSP", "Renamed"]


def test_task_without_actor_is_recorded_as_the_system(tenant_a):
    invite_by_the_system.apply(kwargs={"tenant_id": tenant_a.tenant.pk, "email": "new@alpha.test"})
    entry = entries(tenant_a, action="membership.create").last()
    assert entry.object_repr == "new@alpha.test"
    assert entry.actor_id is None and entry.actor_type == "system" and entry.metadata["via"] == "task"


def test_operator_change_to_a_tenant_lands_in_that_tenants_chain(tenant_a, operator):
    api_client_for(operator).patch(reverse("api:platform-tenants-detail", kwargs={"pk": tenant_a.tenant.pk}),
                                   {"plan": "ops", "status": "suspended"}, format="json")
    entry = entries(tenant_a, action="tenant.update").last()
    assert entry.actor_type == "operator" and entry.changes["plan"] == ["Ultimate", "Ops"]
    assert entry.changes["status"] == ["Active", "Suspended"]


def test_membership_role_and_company_scope_changes_are_recorded(tenant_a):
    admin, comanaged = tenant_a.members["admin"], tenant_a.members["comanaged"]
    api = api_client_for(admin.user)
    api.patch(reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": comanaged.pk}),
              {"companies": [c.pk for c in tenant_a.companies[:2]]}, format="json")
    m2m = entries(tenant_a, action="membership.update", object_id=str(comanaged.pk)).last()
    assert m2m.changes["companies"]["operation"] == "add" and m2m.actor_id == admin.user.pk


def test_rolled_back_change_leaves_no_entry(tenant_a):
    from django.db import transaction

    before = entries(tenant_a).count()
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.rolled_back")
        raise RuntimeError
    assert entries(tenant_a).count() == before
    audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.after")
    assert entries(tenant_a, action="test.after").get().seq == before + 1


def test_bulk_update_is_recorded_explicitly(tenant_a):
    admin = tenant_a.members["admin"]
    queryset = Membership.objects.for_tenant(tenant_a.tenant).exclude(pk=admin.pk)
    changed = queryset_update_audited(queryset=queryset, tenant=tenant_a.tenant, actor=admin,
                                      action="membership.bulk_update", values={"is_active": False})
    assert changed == 3
    entry = entries(tenant_a, action="membership.bulk_update").get()
    assert entry.actor_id == admin.user.pk and entry.object_type == "membership"
    assert entry.metadata["count"] == 3 and sorted(entry.metadata["ids"]) == sorted(queryset.values_list("pk", flat=True))
    assert entry.changes == {"is_active": [["True"], "False"]}
    assert not Membership.objects.for_tenant(tenant_a.tenant).exclude(pk=admin.pk).filter(is_active=True).exists()


def test_change_outside_any_request_lands_in_the_tenant_it_names(tenant_a, tenant_b):
    company = tenant_b.companies[1]
    directory.company_update(actor=tenant_b.members["admin"], company=company, co_managed=False)
    entry = entries(tenant_b, action="company.update", object_id=str(company.pk)).get()
    assert entry.actor_type == "user" and entry.changes == {"co_managed": ["on", "off"]}
    assert (entry.remote_addr, entry.correlation_id) == ("", "") and "via" not in entry.metadata
    assert not entries(tenant_a, object_id=str(company.pk), object_type="company").exists()


def test_a_direct_save_records_nothing(tenant_a):
    """Recording is the services' job: a model saved directly leaves no entry (no signal)."""
    company = tenant_a.companies[1]
    before = entries(tenant_a).count()
    company.co_managed = False
    company.save()
    assert entries(tenant_a).count() == before


def test_numbers_hash_alike_however_the_database_gives_them_back(tenant_a):
    entry = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.numbers",
                               metadata={"whole": 5.0, "big": 1e20, "fraction": 0.1, "bad": float("nan")})
    stored = entries(tenant_a).filter(pk=entry.pk).values().get()
    entry.refresh_from_db()
    assert stored["metadata"]["bad"] == "NaN" and entry_hash(stored) == entry.hash
    assert entry_hash({**stored, "metadata": {**stored["metadata"], "whole": 5, "big": 10**20}}) == entry.hash


def test_every_service_records_its_change_with_its_actor_in_its_chain(tenant_a, operator):
    """One pass over the services that change audited models: the action, the actor and the
    chain each entry lands in."""
    from copilot_admin.access import services as access
    from copilot_admin.copilot.settings_services import tenant_copilot_settings_update
    from copilot_admin.platform.services import tenant_create
    from copilot_admin.regions.models import DataZone
    from copilot_admin.regions.services import deployment_create, deployment_update
    from copilot_admin.usage.services import platform_limits_update, tenant_limits_update
    from tests.factories import add_member

    admin = tenant_a.members["admin"]
    audit_seal()
    start = {chain: entries(chain).order_by("-id").values_list("id", flat=True).first()
             for chain in (tenant_a.tenant.pk, None)}

    role = access.role_create(actor=admin, name="Night shift", user_type="internal", permissions=["copilot.summarize"])
    access.role_update(actor=admin, role=role, description="Evenings")
    role_id = role.pk
    access.role_delete(actor=admin, role=role)
    tenant_copilot_settings_update(actor=admin, features={"prioritize": False})
    tenant_limits_update(actor=admin, changes={"user_requests_per_day": 50})
    tenant_limits_update(actor=admin, changes={"user_requests_per_day": 60})
    pending = add_member(tenant_a.tenant, "Technician", email="pending@alpha.test", accepted=False)
    directory.membership_accept(user=pending.user, membership=pending)
    directory.account_update(actor=admin.user, user=admin.user, full_name="Renamed Admin")
    platform_limits_update(actor=operator, changes={"strike_limit": 4})
    zone = DataZone.objects.get(code="us")
    deployment = deployment_create(actor=operator, zone=zone, name="us-x", endpoint="https://x.openai.azure.com",
                                   deployment="gpt", api_key_env="AZURE_OPENAI_KEY_X")
    deployment_update(actor=operator, azure_deployment=deployment, priority=3)
    created = tenant_create(actor=operator, name="Charlie MSP", slug="charlie", plan="ultimate", zone=zone)

    def recorded(chain):
        return [(e.action, e.actor_id) for e in entries(chain).filter(pk__gt=start.get(chain) or 0)]

    admin_id, operator_id = admin.user.pk, operator.pk
    assert recorded(tenant_a.tenant.pk) == [
        ("role.create", admin_id), ("role.update", admin_id), ("role.delete", admin_id),
        ("tenant.update", admin_id), ("limits.create", admin_id), ("limits.update", admin_id),
        ("membership.create", None), ("membership.update", pending.user.pk),
    ]
    assert recorded(None) == [("user.update", admin_id), ("platform_limits.create", operator_id),
                              ("deployment.create", operator_id), ("deployment.update", operator_id)]
    assert [(e.action, e.actor_id) for e in entries(created)] == [("tenant.create", operator_id)] + [
        ("role.create", operator_id)] * 4
    deleted = entries(tenant_a, action="role.delete").get()
    assert deleted.changes["name"] == ["Night shift", None] and deleted.object_id == str(role_id)
    assert entries(tenant_a, action="tenant.update").last().changes == {
        "feature_switches": [{"prioritize": "on", "summarize": "on", "time-entry": "on"},
                             {"prioritize": "off", "summarize": "on", "time-entry": "on"}]}


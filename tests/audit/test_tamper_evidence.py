"""Tamper evidence: `audit_verify` finds the first broken link of an altered, shortened or
gapped chain; PostgreSQL refuses UPDATE and DELETE of entries except for the retention purge
(and the one UPDATE that seals an entry: test_sealing.py); the purge keeps what remains
verifiable and is itself recorded. Concurrent writers and sealers: test_sealing.py."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from copilot_admin.audit.models import AuditChainHead, AuditEntry
from copilot_admin.audit.selectors import audit_chain_verify
from copilot_admin.audit.services import (
    PURGE_SETTING,
    audit_purge_all_expired,
    audit_purge_expired,
    audit_retention_days,
    audit_retention_set,
)
from tests.audit.conftest import chain_fill, entries
from tests.conftest import require_service


def verify(*args) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("audit_verify", *args, stdout=out)
    except CommandError as error:
        return error.returncode, out.getvalue() + str(error)
    return 0, out.getvalue()


def tamper(sql: str, params=()):
    """Change the table as someone with direct database access would (on PostgreSQL, a
    superuser switching triggers off for the transaction)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


def nth(tenant, seq) -> AuditEntry:
    return entries(tenant).get(seq=seq)


def test_intact_chains_verify(tenant_a, tenant_b):
    code, out = verify()
    assert code == 0 and "ok      tenant:" in out and "ok      platform" in out
    assert f"tenant:{tenant_a.tenant.pk}: {entries(tenant_a).count()} entries verified" in out


def test_altered_entry_is_found(tenant_a, tenant_b):
    victim = nth(tenant_a, 3)
    tamper("UPDATE audit_auditentry SET object_repr = %s WHERE id = %s", ["Someone else", victim.pk])
    code, out = verify()
    assert code == 2 and f"BROKEN  tenant:{tenant_a.tenant.pk}: first broken link at entry 3 (id {victim.pk})" in out
    assert "altered" in out and f"ok      tenant:{tenant_b.tenant.pk}" in out
    assert verify("--tenant", "bravo")[0] == 0


def test_rehashed_entry_breaks_the_next_link(tenant_a):
    from copilot_admin.audit.chain import entry_hash

    victim = entries(tenant_a).filter(seq=2).values().get()
    victim["actor_email"] = "framed@alpha.test"
    tamper("UPDATE audit_auditentry SET actor_email = %s, hash = %s WHERE id = %s",
           [victim["actor_email"], entry_hash(victim), victim["id"]])
    report = audit_chain_verify(tenant_id=tenant_a.tenant.pk)
    assert report.broken_seq == 3 and "previous entry" in report.reason


def test_removed_entry_is_found(tenant_a):
    tamper("DELETE FROM audit_auditentry WHERE id = %s", [nth(tenant_a, 4).pk])
    code, out = verify("--tenant", "alpha")
    assert code == 2 and "entries 4..4 are missing" in out


def test_removed_latest_entries_are_found(tenant_a):
    last = entries(tenant_a).last()
    tamper("DELETE FROM audit_auditentry WHERE tenant_id = %s AND seq >= %s", [tenant_a.tenant.pk, last.seq - 1])
    report = audit_chain_verify(tenant_id=tenant_a.tenant.pk)
    assert not report.ok and "removed from the end" in report.reason


def test_unknown_tenant_is_an_error(db):
    with pytest.raises(CommandError):
        call_command("audit_verify", "--tenant", "nope", stdout=StringIO())


# -- PostgreSQL: the table refuses changes ----------------------------------------------------

@pytest.fixture
def postgresql(db):
    require_service("PostgreSQL", connection.vendor == "postgresql", "the append-only trigger is PostgreSQL's")


def test_postgresql_refuses_update_and_delete(postgresql, tenant_a):
    entry = entries(tenant_a).first()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.for_tenant(tenant_a.tenant).filter(pk=entry.pk).update(object_repr="changed")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.for_tenant(tenant_a.tenant).filter(pk=entry.pk).delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL {PURGE_SETTING} = 'on'")  # the purge switch lets DELETE through, never UPDATE
        cursor.execute("UPDATE audit_auditentry SET action = 'x' WHERE id = %s", [entry.pk])
    assert entries(tenant_a).filter(pk=entry.pk, object_repr=entry.object_repr).exists()


def test_postgresql_lets_the_purge_path_delete(postgresql, tenant_a):
    entry = entries(tenant_a).first()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL {PURGE_SETTING} = 'on'")
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk])
        cursor.execute(f"SET LOCAL {PURGE_SETTING} = 'off'")
    assert not entries(tenant_a).filter(pk=entry.pk).exists()


# -- retention -----------------------------------------------------------------------------------

def test_retention_purge_removes_expired_prefix_keeps_chain_verifiable_and_is_audited(tenant_a, settings):
    settings.AUDIT_RETENTION_MIN_DAYS, settings.AUDIT_RETENTION_DEFAULT_DAYS = 30, 90
    chain_fill(tenant_a, 25)
    kept_from = entries(tenant_a).count() - 4  # the last five entries stay
    later = entries(tenant_a).get(seq=kept_from + 1).created_at
    removed = audit_purge_expired(tenant_id=tenant_a.tenant.pk, now=later + timedelta(days=90), batch_size=7)
    assert removed == kept_from
    remaining = list(entries(tenant_a).values_list("seq", "action"))
    assert remaining[0][0] == kept_from + 1 and remaining[-1][1] == "audit.purge"
    purge = entries(tenant_a, action="audit.purge").get()
    assert purge.actor_type == "system" and purge.metadata["removed"] == removed
    assert purge.metadata["through_seq"] == kept_from and purge.metadata["retention_days"] == 90
    head = AuditChainHead.objects.get(chain=f"tenant:{tenant_a.tenant.pk}")
    assert head.purged_through_seq == kept_from
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok and verify()[0] == 0
    assert audit_purge_expired(tenant_id=tenant_a.tenant.pk, now=later + timedelta(days=90)) == 0  # idempotent


def test_purge_of_every_chain_respects_each_tenants_period(tenant_a, tenant_b, operator, settings):
    settings.AUDIT_RETENTION_MIN_DAYS, settings.AUDIT_RETENTION_DEFAULT_DAYS = 30, 90
    assert audit_retention_set(actor=operator, tenant=tenant_b.tenant, days=400) == 400
    result = audit_purge_all_expired(now=timezone.now() + timedelta(days=100))
    assert result[f"tenant:{tenant_a.tenant.pk}"] > 0 and result[f"tenant:{tenant_b.tenant.pk}"] == 0
    assert entries(tenant_a).values_list("action", flat=True).get() == "audit.purge"
    assert verify()[0] == 0


def test_retention_period_has_a_platform_minimum_and_only_operators_set_it(tenant_a, operator, settings):
    from copilot_admin.core.errors import ApplicationError, PermissionRefused

    settings.AUDIT_RETENTION_MIN_DAYS, settings.AUDIT_RETENTION_DEFAULT_DAYS = 365, 730
    assert audit_retention_days(tenant_id=tenant_a.tenant.pk) == 730
    with pytest.raises(ApplicationError):
        audit_retention_set(actor=operator, tenant=tenant_a.tenant, days=30)
    with pytest.raises(PermissionRefused):
        audit_retention_set(actor=tenant_a.members["admin"].user, tenant=tenant_a.tenant, days=1000)
    audit_retention_set(actor=operator, tenant=tenant_a.tenant, days=1000)
    change = entries(tenant_a, action="audit.retention_update").get()
    assert change.actor_id == operator.pk and change.changes == {"retention_days": [None, 1000]}
    settings.AUDIT_RETENTION_MIN_DAYS = 2000  # a raised minimum wins over an older, shorter period
    assert audit_retention_days(tenant_id=tenant_a.tenant.pk) == 2000


def test_purge_task_is_scheduled_daily(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["audit-purge-expired"]
    assert schedule["task"] == "copilot_admin.audit.tasks.audit_purge_expired"


def test_retention_command_shows_and_sets_the_period(tenant_a, settings):
    settings.AUDIT_RETENTION_MIN_DAYS, settings.AUDIT_RETENTION_DEFAULT_DAYS = 365, 730
    out = StringIO()
    call_command("audit_retention", "--tenant", "alpha", stdout=out)
    call_command("audit_retention", "--tenant", "alpha", "--days", "1000", stdout=out)
    assert out.getvalue().splitlines() == ["alpha: audit entries kept 730 days", "alpha: audit entries kept 1000 days"]
    with pytest.raises(CommandError, match="at least 365 days"):
        call_command("audit_retention", "--tenant", "alpha", "--days", "10", stdout=out)
    assert entries(tenant_a, action="audit.retention_update").get().actor_type == "system"

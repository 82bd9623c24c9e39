"""Audit entries are partitioned by month on PostgreSQL (migration 0007, audit/partitions.py;
docs/SCALING.md section 2): entries land in their month's partition, the months ahead are
created (with the chain's unique numbering) and emptied past months dropped by the hourly
maintenance, the append-only trigger holds on every partition and keeps a chain's numbering
unique across months, the sealer and the purge read only the months they need, and converting
a populated table (both ways) leaves every entry and every chain's verification unchanged."""

import datetime as dt
import re

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from copilot_admin.audit import partitions
from copilot_admin.audit.chain import entry_hash
from copilot_admin.audit.models import AuditEntry
from copilot_admin.audit.selectors import audit_chain_verify
from copilot_admin.audit.services import PURGE_SETTING, _lock_head, audit_event_record, audit_purge_expired, audit_seal
from copilot_admin.audit.tasks import audit_maintenance, audit_seal_pending
from copilot_admin.core import partitions as core
from tests.conftest import query_plan, require_service

pytestmark = pytest.mark.django_db

TABLE = "audit_auditentry"


@pytest.fixture(autouse=True)
def _postgres():
    require_service("PostgreSQL", connection.vendor == "postgresql", "partitioning is PostgreSQL's")


def _partition_of(entry_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT tableoid::regclass::text FROM "{TABLE}" WHERE id = %s', [entry_id])
        return cursor.fetchone()[0]


def _exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        return cursor.fetchone()[0] is not None


def _unique_indexes_of(name: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE 'CREATE UNIQUE%%'",
                       [name])
        return {row[0] for row in cursor.fetchall()}


def _sql(statement: str, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def _scanned(plan: str) -> set[str]:
    """The audit partitions a plan reads."""
    return set(re.findall(r"on (audit_auditentry_\w+)", plan))


def _months_ago(months: int) -> dt.date:
    month = core.month_start(timezone.now().date())
    for _ in range(months):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return month


def _fill(tenant_id, moments) -> None:
    """Sealed, well-formed entries of one chain created at `moments` (in order), as the sealer
    would have chained them."""
    with transaction.atomic():
        head = _lock_head(tenant_id)
        rows, seq, previous = [], head.seq, head.hash
        for i, moment in enumerate(moments):
            seq += 1
            fields = {
                "tenant_id": tenant_id, "seq": seq, "created_at": moment, "actor_id": None, "actor_email": "",
                "actor_type": "system", "remote_addr": "192.0.2.1", "action": "test.partitioned",
                "object_type": "company", "object_id": str(i), "object_repr": f"Object {i}", "changes": {},
                "metadata": {"n": i}, "outcome": "success", "correlation_id": f"c{i}", "prev_hash": previous,
            }
            fields["hash"] = previous = entry_hash(fields)
            rows.append(AuditEntry(**fields))
        AuditEntry.unscoped_objects.bulk_create(rows, batch_size=2000)
        head.seq, head.hash = seq, previous
        head.save(update_fields=["seq", "hash"])


def _checksum() -> tuple:
    """Every entry, every column: a count and an order-independent sum of the rows' digests."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint) FROM {TABLE} t")
        return cursor.fetchone()


def test_the_table_is_partitioned_with_this_month_three_ahead_and_the_chain_numbering_on_each():
    assert partitions.is_partitioned()
    month = core.month_start(timezone.now().date())
    names = []
    for _ in range(partitions.MONTHS_AHEAD + 1):
        names.append(partitions.partition_name(month))
        month = core.next_month(month)
    names.append(core.default_partition_name(TABLE))
    for name in names:
        assert _exists(name), name
        assert {f"{name}_chain_seq", f"{name}_platform_seq"} <= _unique_indexes_of(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
                       "AND contype = 'p'", [TABLE])
        assert cursor.fetchone()[0] == "PRIMARY KEY (id, created_at)"
        cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", [TABLE])
        assert [row[0] for row in cursor.fetchall()] == ["audit_entry_append_only"]


def test_entries_land_in_their_month_and_next_month_s_entries_seal_and_verify(tenant_a, monkeypatch):
    entry = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.now")
    assert _partition_of(entry.pk) == partitions.partition_name(entry.created_at.date())
    next_month = core.next_month(core.month_start(timezone.now().date()))
    moment = dt.datetime.combine(next_month, dt.time(9), tzinfo=dt.UTC)
    monkeypatch.setattr("copilot_admin.audit.services.timezone.now", lambda: moment)
    later = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.next_month")
    monkeypatch.undo()
    assert _partition_of(later.pk) == partitions.partition_name(next_month)
    audit_seal(tenant_id=tenant_a.tenant.pk)
    later.refresh_from_db()
    assert later.sealed
    report = audit_chain_verify(tenant_id=tenant_a.tenant.pk)
    assert report.ok and report.unsealed == 0, report


def test_the_trigger_refuses_update_and_delete_on_each_partition(tenant_a):
    entry = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.trigger")
    audit_seal(tenant_id=tenant_a.tenant.pk)
    partition = _partition_of(entry.pk)
    for table in (partition, TABLE):
        with pytest.raises(DatabaseError, match="append-only"):
            _sql(f'UPDATE "{table}" SET object_repr = %s WHERE id = %s', ["forged", entry.pk])
        with pytest.raises(DatabaseError, match="append-only"):
            _sql(f'DELETE FROM "{table}" WHERE id = %s', [entry.pk])
    # A month created later by the maintenance carries the trigger too (cloned from the parent).
    far = timezone.now().date() + dt.timedelta(days=800)
    (created,) = partitions.audit_partitions_ensure(today=far, months_ahead=0)
    moment = dt.datetime.combine(core.month_start(far), dt.time(1), tzinfo=dt.UTC)
    _fill(tenant_a.tenant.pk, [moment])
    far_entry = AuditEntry.objects.for_tenant(tenant_a.tenant).filter(created_at=moment).get()
    assert _partition_of(far_entry.pk) == created
    with pytest.raises(DatabaseError, match="append-only"):
        _sql(f'UPDATE "{created}" SET action = %s WHERE id = %s', ["forged", far_entry.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        _sql(f'DELETE FROM "{created}" WHERE id = %s', [far_entry.pk])
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok


def test_a_chain_s_numbering_stays_unique_across_months(tenant_a, monkeypatch):
    """Each month has its own unique (tenant, seq) index; across months the trigger refuses a
    seal that does not number above the chain head (a seq reused in another month)."""
    sealed = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.first")
    audit_seal(tenant_id=tenant_a.tenant.pk)
    sealed.refresh_from_db()
    moment = dt.datetime.combine(core.next_month(core.month_start(timezone.now().date())), dt.time(2), tzinfo=dt.UTC)
    monkeypatch.setattr("copilot_admin.audit.services.timezone.now", lambda: moment)
    other = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.other_month")
    monkeypatch.undo()
    assert _partition_of(other.pk) != _partition_of(sealed.pk)
    with pytest.raises(DatabaseError, match="not above its chain head"):  # sealed's seq, again, next month
        _sql(f'UPDATE "{TABLE}" SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s',
             [sealed.seq, "0" * 64, "1" * 64, other.pk])
    audit_seal(tenant_id=tenant_a.tenant.pk)  # the sealer numbers above the head: passes
    other.refresh_from_db()
    assert other.seq == sealed.seq + 1
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok


def test_maintenance_creates_months_ahead_and_drops_emptied_past_months(tenant_a):
    ahead = partitions.partition_name(core.next_month(core.month_start(timezone.now().date())))
    _sql(f'DROP TABLE "{ahead}"')
    old_empty, old_kept = _months_ago(30), _months_ago(29)
    for month in (old_empty, old_kept):
        _sql(core.partition_create_sql(TABLE, month))
        partitions.chain_unique_indexes_create(partitions.partition_name(month))
    _fill(tenant_a.tenant.pk, [dt.datetime.combine(old_kept, dt.time(3), tzinfo=dt.UTC)])

    result = audit_maintenance()
    assert result["partitions_created"] == [ahead]
    assert {f"{ahead}_chain_seq", f"{ahead}_platform_seq"} <= _unique_indexes_of(ahead)
    assert result["partitions_dropped"] == [partitions.partition_name(old_empty)]
    assert not _exists(partitions.partition_name(old_empty))
    assert _exists(partitions.partition_name(old_kept))  # still holds an entry
    assert AuditEntry.objects.platform_chain().filter(
        action="audit.partition_drop", object_id=partitions.partition_name(old_empty)).exists()
    again = audit_maintenance()
    assert again["partitions_created"] == [] and again["partitions_dropped"] == []

    # The purge empties the old month (the entry is past any retention): the next run drops it.
    assert audit_purge_expired(tenant_id=tenant_a.tenant.pk) >= 1
    assert audit_maintenance()["partitions_dropped"] == [partitions.partition_name(old_kept)]
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok


def test_a_month_that_gains_an_entry_is_not_dropped(tenant_a):
    """The emptiness is checked again once the month is detached, under its lock: a month that
    is not empty then is attached back, untouched."""
    month = _months_ago(31)
    name = partitions.partition_name(month)
    _sql(core.partition_create_sql(TABLE, month))
    _fill(tenant_a.tenant.pk, [dt.datetime.combine(month, dt.time(4), tzinfo=dt.UTC)])
    with pytest.raises(partitions.PartitionNotEmpty):
        partitions._drop_if_empty(name)
    assert name in {p.name for p in core.partitions_of(TABLE)}
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok


def test_the_sealer_and_the_purge_read_only_the_months_they_need(tenant_a):
    old = _months_ago(2)
    _sql(core.partition_create_sql(TABLE, old))
    partitions.chain_unique_indexes_create(partitions.partition_name(old))
    since = timezone.now() - dt.timedelta(hours=24)
    unsealed = AuditEntry.objects.for_chain(tenant_a.tenant.pk).filter(seq__isnull=True, created_at__gte=since)
    scanned = _scanned(query_plan(unsealed.order_by("id")))
    assert partitions.partition_name(old) not in scanned and scanned, scanned
    cutoff = dt.datetime.combine(core.next_month(old), dt.time(0), tzinfo=dt.UTC)
    purge = AuditEntry.objects.for_chain(tenant_a.tenant.pk).filter(seq__gt=0, created_at__lt=cutoff).order_by("seq")
    scanned = _scanned(query_plan(purge))
    current = partitions.partition_name(core.month_start(timezone.now().date()))
    assert partitions.partition_name(old) in scanned and current not in scanned, scanned


def test_the_periodic_sealer_looks_back_its_window_and_the_maintenance_seals_the_rest(tenant_a, settings):
    settings.AUDIT_SEAL_ON_COMMIT = False
    audit_seal()
    straggler_moment = timezone.now() - dt.timedelta(hours=settings.AUDIT_SEAL_WINDOW_HOURS + 2)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (tenant_id, created_at, actor_email, actor_type, remote_addr, action, object_type, "
            "object_id, object_repr, changes, metadata, outcome, correlation_id) "
            "VALUES (%s, %s, '', 'system', '', 'test.straggler', '', '', '', '{}', '{}', 'success', '') RETURNING id",
            [tenant_a.tenant.pk, straggler_moment],
        )
        straggler_id = cursor.fetchone()[0]
    recent = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.recent")
    assert audit_seal_pending() == 1
    chain = AuditEntry.objects.for_tenant(tenant_a.tenant)
    assert chain.get(pk=recent.pk).sealed and not chain.get(pk=straggler_id).sealed
    assert audit_maintenance()["sealed"] == 1
    assert chain.get(pk=straggler_id).sealed
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok


def test_converting_a_populated_table_both_ways_keeps_every_entry_and_chain(tenant_a, tenant_b):
    """A few thousand sealed entries over four months (the older ones in the default partition
    of this fresh test database), then: back to one plain table, and partitioned again."""
    audit_seal()
    start = dt.datetime.combine(_months_ago(3), dt.time(0), tzinfo=dt.UTC)
    step = (timezone.now() - start) / 2000
    moments = [start + step * i for i in range(2000)]
    _fill(tenant_a.tenant.pk, moments)
    _fill(tenant_b.tenant.pk, moments[::2])
    _fill(None, moments[::4])
    chains = [None, tenant_a.tenant.pk, tenant_b.tenant.pk]
    reports = {chain: audit_chain_verify(tenant_id=chain) for chain in chains}
    assert all(report.ok for report in reports.values()) and reports[tenant_a.tenant.pk].checked >= 2000
    checksum = _checksum()
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM audit_auditentry")
        max_id = cursor.fetchone()[0]

    call_command("migrate", "audit", "0006", verbosity=0)
    assert not partitions.is_partitioned()
    assert _checksum() == checksum
    assert {chain: audit_chain_verify(tenant_id=chain) for chain in chains} == reports
    assert {"audit_entry_unique_seq_per_tenant", "audit_entry_unique_platform_seq"} <= _unique_indexes_of(TABLE)
    entry = AuditEntry.objects.for_tenant(tenant_a.tenant).order_by("-seq").first()
    with pytest.raises(DatabaseError, match="append-only"):
        _sql(f"UPDATE {TABLE} SET object_repr = 'forged' WHERE id = %s", [entry.pk])

    call_command("migrate", "audit", "0007", verbosity=0)
    assert partitions.is_partitioned()
    assert _checksum() == checksum
    assert {chain: audit_chain_verify(tenant_id=chain) for chain in chains} == reports
    # The older months got partitions of their own; nothing is left outside them.
    assert _exists(partitions.partition_name(_months_ago(3)))
    assert partitions.audit_default_partition_rows() == 0
    with pytest.raises(DatabaseError, match="append-only"):
        _sql(f'UPDATE "{_partition_of(entry.pk)}" SET object_repr = %s WHERE id = %s', ["forged", entry.pk])
    # New entries continue the id sequence and the chains.
    new = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.after_conversion")
    assert new.pk > max_id
    audit_seal()
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok


def test_the_purge_setting_lets_the_retention_purge_delete_from_a_partition(tenant_a):
    entry = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.purge_switch")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL {PURGE_SETTING} = 'on'")
        cursor.execute(f'DELETE FROM "{_partition_of(entry.pk)}" WHERE id = %s', [entry.pk])
    assert not AuditEntry.objects.for_tenant(tenant_a.tenant).filter(pk=entry.pk).exists()


def test_the_maintenance_is_scheduled_hourly(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["audit-maintenance"]
    assert schedule["task"] == audit_maintenance.name == "copilot_admin.audit.tasks.audit_maintenance"
    assert len(schedule["schedule"].minute) == 1 and len(schedule["schedule"].hour) == 24

"""Usage records are partitioned by month on PostgreSQL (migration 0011, usage/partitions.py;
docs/SCALING.md section 2): rows land in their month's partition, the months ahead are created
by the maintenance task, and the keys, indexes and foreign keys survive the conversion."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from copilot_admin.usage import partitions
from copilot_admin.usage.models import UsageOutcome, UsageRecord
from copilot_admin.usage.services import usage_record_create
from copilot_admin.usage.tasks import usage_maintenance
from tests.conftest import require_service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgres():
    require_service("PostgreSQL", connection.vendor == "postgresql", "partitioning is PostgreSQL's")


def _partition_of(record_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute('SELECT tableoid::regclass::text FROM "usage_usagerecord" WHERE id = %s', [record_id])
        return cursor.fetchone()[0]


def _record(tenant_a, **extra):
    member = tenant_a.members["tech"]
    usage_record_create(membership=member, feature="summarize", zone="us", outcome=UsageOutcome.OK,
                        request_id=extra.pop("request_id", None) or timezone.now().isoformat(), **extra)
    return UsageRecord.objects.for_tenant(tenant_a.tenant).latest("id")


def test_the_table_is_partitioned_by_month_with_this_month_and_three_ahead():
    assert partitions.is_partitioned()
    month = partitions.month_start(timezone.now().date())
    for _ in range(partitions.MONTHS_AHEAD + 1):
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [partitions.partition_name(month)])
            assert cursor.fetchone()[0] is not None, month
        month = partitions.next_month(month)


def test_a_call_s_record_lands_in_its_month_s_partition(tenant_a):
    record = _record(tenant_a)
    assert _partition_of(record.pk) == partitions.partition_name(record.created_at.date())
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).filter(pk=record.pk).exists()


def test_the_maintenance_task_creates_missing_months_ahead_idempotently():
    month = partitions.next_month(partitions.month_start(timezone.now().date()))
    name = partitions.partition_name(month)
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{name}"')
    assert usage_maintenance()["partitions_created"] == [name]
    assert usage_maintenance()["partitions_created"] == []
    far = timezone.now().date() + dt.timedelta(days=400)
    created = partitions.usage_partitions_ensure(today=far, months_ahead=0)
    assert created == [partitions.partition_name(partitions.month_start(far))]


def test_keys_indexes_and_foreign_keys_survive_the_conversion(tenant_a):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'usage_usagerecord'")
        indexes = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = 'usage_usagerecord'::regclass")
        constraints = cursor.fetchall()
    assert {"usage_record_tenant_time", "usage_record_tenant_user_time"} <= indexes
    assert ("p", "PRIMARY KEY (id, created_at)") in constraints
    assert sum(1 for kind, _ in constraints if kind == "f") == 4  # tenant, user, membership, company
    record = _record(tenant_a, request_id="dup-request")
    with pytest.raises(IntegrityError), transaction.atomic():  # same id and moment: refused
        with connection.cursor() as cursor:
            cursor.execute('INSERT INTO "usage_usagerecord" SELECT * FROM "usage_usagerecord" WHERE id = %s',
                           [record.pk])
    with pytest.raises(IntegrityError), transaction.atomic():  # a foreign key still holds
        with connection.cursor() as cursor:
            cursor.execute('UPDATE "usage_usagerecord" SET tenant_id = -1 WHERE id = %s', [record.pk])
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_the_partitions_have_planner_statistics_after_the_migrations(_postgres):
    """usage/0012 runs ANALYZE after 0011's copy: every partition the migrations created has
    been analyzed (an empty table is never analyzed by autovacuum)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.relname, s.last_analyze FROM pg_inherits i JOIN pg_stat_user_tables s ON s.relid = i.inhrelid "
            "WHERE i.inhparent = 'usage_usagerecord'::regclass"
        )
        rows = cursor.fetchall()
    assert rows and all(analyzed is not None for _, analyzed in rows), rows

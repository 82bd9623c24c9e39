"""`core.inserts.RowInsert`: one precompiled INSERT saves the row the ORM would have saved."""

from django.db import connection
from django.utils import timezone

from copilot_admin.audit.models import AuditEntry
from copilot_admin.core.inserts import RowInsert
from copilot_admin.usage.models import DailyUsage, HourlyUsage, UsageRecord
from copilot_admin.usage.rollups import usage_record_insert


def _entry(tenant, **fields):
    return AuditEntry(tenant=tenant, created_at=timezone.now(), actor_type="system", action="test.insert",
                      metadata={"nested": {"n": 1}, "list": [1, "two"]}, changes={}, **fields)


def test_a_row_inserted_reads_back_as_the_orm_would_have_saved_it(tenant_a):
    inserted = RowInsert(AuditEntry).insert(_entry(tenant_a.tenant, object_id="a"))
    created = AuditEntry.unscoped_objects.bulk_create([_entry(tenant_a.tenant, object_id="b")])[0]
    assert inserted.pk and not inserted._state.adding and inserted._state.db == "default"
    fields = [f.attname for f in AuditEntry._meta.concrete_fields if f.attname not in ("id", "object_id", "created_at")]
    a = AuditEntry.unscoped_objects.values(*fields).get(pk=inserted.pk)
    b = AuditEntry.unscoped_objects.values(*fields).get(pk=created.pk)
    assert a == b and a["metadata"] == {"nested": {"n": 1}, "list": [1, "two"]}


def test_the_statement_is_built_once_per_vendor_with_named_parameters():
    insert = RowInsert(UsageRecord, prefix="r_")
    sql = insert.sql(connection)
    assert sql is insert.sql(connection)
    assert sql.startswith(f'INSERT INTO "{UsageRecord._meta.db_table}"')
    assert "%(r_tenant_id)s" in sql and "%(r_id)s" not in sql  # the auto primary key is the database's


def test_a_usage_record_and_its_roll_ups_are_one_statement(tenant_a, django_assert_num_queries):
    member = tenant_a.members["tech"]
    record = UsageRecord(tenant=tenant_a.tenant, user_id=member.user_id, membership=member, feature="summarize",
                         zone="us", outcome="ok", request_id="one-statement")
    if connection.vendor == "postgresql":
        with django_assert_num_queries(1):
            usage_record_insert(record, requests=1, prompt_tokens=10, completion_tokens=5)
    else:  # elsewhere the insert, then the roll-ups' upserts in turn
        usage_record_insert(record, requests=1, prompt_tokens=10, completion_tokens=5)
    saved = UsageRecord.objects.for_tenant(tenant_a.tenant).get(request_id="one-statement")
    assert saved.pk == record.pk
    daily = DailyUsage.objects.for_tenant(tenant_a.tenant).get(membership=member, feature="summarize")
    hourly = HourlyUsage.objects.for_tenant(tenant_a.tenant).get(membership=member)
    assert (daily.requests, daily.prompt_tokens, daily.completion_tokens) == (1, 10, 5)
    assert (hourly.requests, hourly.tokens) == (1, 15)

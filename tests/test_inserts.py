"""`core.inserts`: one precompiled INSERT saves the row the ORM would have saved (`RowInsert`);
rows of several models written together, in one statement on PostgreSQL (`OneStatement`)."""

import pytest
from django.db import connection
from django.utils import timezone

from copilot_admin.audit.models import AuditEntry
from copilot_admin.core.inserts import OneStatement, RowInsert
from copilot_admin.usage.models import DailyUsage, HourlyUsage, UsageRecord
from copilot_admin.usage.rollups import usage_record_add, usage_record_insert


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


# -- OneStatement: rows of several models, and more CTEs, written together ----------------------

def _record(tenant, member, request_id):
    return UsageRecord(tenant=tenant, user_id=member.user_id, membership=member, feature="summarize",
                       zone="us", outcome="ok", request_id=request_id)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_rows_of_two_models_and_the_roll_ups_are_one_statement_in_its_own_transaction(tenant_a):
    """Outside a transaction, on PostgreSQL, the parts are one statement in autocommit: no
    BEGIN/COMMIT round trips around it; both rows saved with their primary keys."""
    member = tenant_a.members["tech"]
    entry, record = _entry(tenant_a.tenant, object_id="together"), _record(tenant_a.tenant, member, "together")
    statement = OneStatement()
    statement.insert(RowInsert(AuditEntry, prefix="entry_"), entry)
    usage_record_add(statement, record, requests=1, prompt_tokens=10, completion_tokens=5)
    sent = []

    def wrapper(execute, sql, params, many, context):
        sent.append((sql, connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        statement.execute()
    if connection.vendor == "postgresql":
        assert len(sent) == 1 and not sent[0][1] and sent[0][0].startswith("WITH ")
        assert connection.get_autocommit()
    assert AuditEntry.unscoped_objects.get(pk=entry.pk).object_id == "together"
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).get(pk=record.pk).request_id == "together"
    daily = DailyUsage.objects.for_tenant(tenant_a.tenant).get(membership=member, feature="summarize")
    assert (daily.requests, daily.prompt_tokens, daily.completion_tokens) == (1, 10, 5)


def test_parts_whose_parameters_would_clash_are_refused(tenant_a):
    member = tenant_a.members["tech"]
    statement = OneStatement()
    statement.insert(RowInsert(UsageRecord, prefix="r_"), _record(tenant_a.tenant, member, "one"))
    with pytest.raises(ValueError, match="prefix 'r_'"):
        statement.insert(RowInsert(UsageRecord, prefix="r_"), _record(tenant_a.tenant, member, "two"))
    statement.add("a AS (SELECT 1)", {"x": 1}, elsewhere=lambda: None)
    with pytest.raises(ValueError, match="named twice"):
        statement.add("b AS (SELECT 1)", {"x": 2}, elsewhere=lambda: None)


class _Refused(Exception):
    pass


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_first_work_shares_the_statements_transaction_and_after_commit_waits_for_it(tenant_a):
    """`first` work (a strike) and the statement commit together or not at all; `on_commit`
    runs only once they have committed."""
    member = tenant_a.members["tech"]
    committed = []

    def attempt(request_id):
        statement = OneStatement()
        statement.first(lambda: AuditEntry.unscoped_objects.bulk_create([_entry(tenant_a.tenant, object_id=request_id)]))
        statement.insert(RowInsert(UsageRecord, prefix="r_"), _record(tenant_a.tenant, member, request_id))
        statement.on_commit(lambda: committed.append(request_id))
        statement.execute()

    def refuse_records(execute, sql, params, many, context):
        if 'INSERT INTO "usage_usagerecord"' in sql:
            raise _Refused
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_records), pytest.raises(_Refused):
        attempt("refused")
    assert not AuditEntry.unscoped_objects.filter(object_id="refused").exists()  # the first work rolled back
    assert committed == []
    attempt("kept")
    assert AuditEntry.unscoped_objects.filter(object_id="kept").exists()
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).filter(request_id="kept").exists()
    assert committed == ["kept"]

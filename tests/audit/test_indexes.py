"""The audit log's indexes: in the migration state, and used by the planner at a realistic size.

The EXPLAIN tests run on PostgreSQL with a few hundred thousand generated entries after
ANALYZE, with the planner's default settings (no `enable_seqscan = off`): they show the
indexes serve the queries at a size where a sequential scan is what the planner would
otherwise pick, not that they are fast (tests never time anything).

The table is partitioned by month on PostgreSQL (migration 0007): an index declared on the
table exists on each partition under a derived name (`audit_auditentry_2027_01_tenant_id_id_idx`),
so a plan's index is traced back to the table's index it belongs to (`_indexes_used`), and a
sequential scan is only acceptable on a partition that holds no rows (a month ahead).
"""
import re

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from copilot_admin.audit.models import AuditEntry, Outcome
from tests.conftest import query_plan, require_service

AUDIT_INDEXES = {
    "audit_tenant_id_idx", "audit_tenant_created_idx", "audit_tenant_action_idx", "audit_tenant_actor_idx",
    "audit_tenant_object_idx", "audit_tenant_outcome_idx", "audit_unsealed_idx",
}


def test_the_migrations_create_the_audit_indexes(db):
    state = MigrationLoader(connection).project_state()
    indexes = {index.name: index for index in state.models["audit", "auditentry"].options["indexes"]}
    assert AUDIT_INDEXES <= set(indexes)
    unsealed = indexes["audit_unsealed_idx"]
    assert unsealed.fields == ["tenant", "id"]
    assert str(unsealed.condition) == "(AND: ('seq__isnull', True))"
    assert indexes["audit_tenant_outcome_idx"].fields == ["tenant", "outcome", "-id"]


def _indexes_used(plan: str) -> set[str]:
    """The indexes the plan scans, with the table's index each partition's index belongs to."""
    names = set(re.findall(r"(?:Index|Index Only) Scan(?: Backward)? using (\S+)", plan))
    names |= set(re.findall(r"Bitmap Index Scan on (\S+)", plan))
    with connection.cursor() as cursor:
        for name in list(names):
            cursor.execute(
                "SELECT parent.relname FROM pg_inherits i JOIN pg_class child ON child.oid = i.inhrelid "
                "JOIN pg_class parent ON parent.oid = i.inhparent WHERE child.relname = %s",
                [name],
            )
            names |= {row[0] for row in cursor.fetchall()}
    return names


def _populated_seq_scans(plan: str) -> list[str]:
    """The tables (partitions) the plan reads sequentially that hold any row."""
    scanned = []
    with connection.cursor() as cursor:
        for table in re.findall(r"Seq Scan on (\S+)", plan):
            cursor.execute(f'SELECT 1 FROM "{table}" LIMIT 1')
            if cursor.fetchone() is not None:
                scanned.append(table)
    return scanned


def _generate(*, tenant_id, count, first_seq, unsealed):
    """`count` sealed entries copied from a template (every `200`th a failure), then `unsealed`
    entries without seq/hash: the shape of a busy chain the sealer keeps up with."""
    template = AuditEntry.objects.across_tenants().order_by("id").first()
    columns = [f.column for f in AuditEntry._meta.concrete_fields if not f.primary_key]
    override = {
        "tenant_id": "%(tenant)s",
        "seq": "CASE WHEN g <= %(count)s THEN %(first)s + g END",
        "prev_hash": "CASE WHEN g <= %(count)s THEN md5(g::text) || md5(g::text) END",
        "hash": "CASE WHEN g <= %(count)s THEN md5(g::text) || md5(g::text) END",
        "outcome": f"CASE WHEN g %% 200 = 0 THEN '{Outcome.FAILURE}' ELSE '{Outcome.SUCCESS}' END",
        "created_at": "now() - (%(total)s - g) * interval '1 second'",
    }
    quote = connection.ops.quote_name
    select = ", ".join(override.get(column, quote(column)) for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {AuditEntry._meta.db_table} ({", ".join(map(quote, columns))}) '
            f"SELECT {select} FROM {AuditEntry._meta.db_table}, generate_series(1, %(total)s) AS g WHERE id = %(id)s",
            {"tenant": tenant_id, "count": count, "first": first_seq, "total": count + unsealed, "id": template.pk},
        )


@pytest.fixture
def big_audit_log(db, tenant_a, tenant_b):
    require_service("PostgreSQL", connection.vendor == "postgresql", "the plans asserted are PostgreSQL's")
    assert AuditEntry.objects.across_tenants().exists()
    base = 10_000_000  # clear of the fixtures' own seqs
    _generate(tenant_id=tenant_b.tenant.pk, count=200_000, first_seq=base, unsealed=0)
    _generate(tenant_id=tenant_a.tenant.pk, count=100_000, first_seq=base, unsealed=20)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AuditEntry._meta.db_table}")
    return tenant_a.tenant


def test_the_sealers_unsealed_entries_query_uses_an_index(big_audit_log):
    """The sealer's query (audit_seal): one chain's unsealed entries in order. Either the
    partial `audit_unsealed_idx` or the unique (tenant, seq) index (b-tree indexes hold
    NULLs) reads just the unsealed tail; the planner picks between them by its statistics,
    so the test asserts an index scan bounded by `seq IS NULL`, never a sequential scan.
    The migration-state test above pins the partial index itself."""
    plan = query_plan(AuditEntry.objects.for_chain(big_audit_log.pk).filter(seq__isnull=True).order_by("id"))
    assert not _populated_seq_scans(plan), plan
    assert "audit_unsealed_idx" in _indexes_used(plan) or "(seq IS NULL)" in plan, plan
    # The sealer's work list across chains.
    plan = query_plan(AuditEntry.objects.across_tenants().filter(seq__isnull=True).order_by().values("tenant_id").distinct())
    assert not _populated_seq_scans(plan) and "Index" in plan, plan


def test_a_page_of_failures_uses_the_outcome_index(big_audit_log):
    page = AuditEntry.objects.for_chain(big_audit_log.pk).filter(outcome=Outcome.FAILURE).order_by("-id")[:51]
    plan = query_plan(page)
    assert "audit_tenant_outcome_idx" in _indexes_used(plan), plan
    assert not _populated_seq_scans(plan), plan


def test_the_newest_first_page_and_the_chain_walk_use_an_index(big_audit_log):
    chain = AuditEntry.objects.for_chain(big_audit_log.pk)
    plan = query_plan(chain.order_by("-id")[:51])
    assert "audit_tenant_id_idx" in _indexes_used(plan) and not _populated_seq_scans(plan), plan
    plan = query_plan(chain.filter(seq__isnull=False, seq__gt=10_050_000).order_by("seq")[:5000])
    # Each month's own unique (tenant, seq) index (migration 0007), merged in seq order.
    assert any(name.endswith("_chain_seq") for name in _indexes_used(plan)), plan
    assert not _populated_seq_scans(plan), plan

"""Audit entries become a table partitioned by month of `created_at` (PostgreSQL only;
docs/SCALING.md, section 2; copilot_admin/audit/partitions.py keeps months created ahead and
drops the months the retention purge has emptied). A no-op on other databases.

In place, in one transaction, under an exclusive lock: the table is renamed, a partitioned table
with the same columns and checks takes its name, its months (from the oldest entry's to three
ahead) and a default partition are created, the entries are copied unchanged (INSERT does not
fire the append-only trigger), the old table is dropped; then the keys, indexes and the trigger
are created again, the id sequence continues from the highest id, and the table is analyzed.

Keys and uniqueness (PostgreSQL requires the partition key in every unique constraint of a
partitioned table):
- the primary key becomes (id, created_at); ids still come from one sequence, and nothing
  references an entry by foreign key. Django's model state is unchanged (`id` is the key).
- the chain's (tenant_id, seq) and the platform chain's (seq WHERE tenant_id IS NULL) become
  unique indexes on each partition (`<partition>_chain_seq`, `<partition>_platform_seq`,
  created with every new month by audit/partitions.py). Across months, uniqueness is kept by
  the append-only trigger: the one UPDATE it lets through (sealing: seq, prev_hash and hash
  set once, from empty, nothing else changed) must also hold the chain head's row lock (the
  trigger takes it: FOR UPDATE) and number the entry above the head's seq. The sealer is the
  only writer of seq and advances the head in the same transaction, so a seq at or below the
  head, in any month, is refused, and two sealers of one chain take turns. `audit_verify`
  still walks each chain by seq across every partition and reports duplicates and gaps.
- sealing never changes created_at, so an entry never moves between partitions.

The trigger is created on the partitioned parent, so PostgreSQL clones it onto every partition,
present and future: a direct UPDATE or DELETE of a partition is refused like one of the parent.

Reversing converts back to one plain table with the original keys, unique constraints, indexes,
identity column and trigger, the entries copied unchanged.
"""

import datetime as dt

from django.db import migrations

TABLE = "audit_auditentry"
OLD = "audit_auditentry_unpartitioned"
PARTITIONED_OLD = "audit_auditentry_partitioned"
MONTHS_AHEAD = 3
PURGE_SETTING = "copilot_admin.audit_purge"
# Unique constraints of the plain table that a partitioned one cannot have as such.
UNIQUE_SEQ = "audit_entry_unique_seq_per_tenant"
UNIQUE_PLATFORM_SEQ = "audit_entry_unique_platform_seq"

# 0003's function, plus: sealing holds the chain head's lock and numbers above the head.
SEAL_ONCE_ABOVE_HEAD = f"""
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
DECLARE head_seq bigint;
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('{PURGE_SETTING}', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE'
        AND OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
        AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL
        AND (to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash') = (to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash') THEN
        -- The sealer, once: under the chain head's lock, above the head (unique across months).
        SELECT seq INTO head_seq FROM audit_auditchainhead
            WHERE chain = CASE WHEN NEW.tenant_id IS NULL THEN 'platform' ELSE 'tenant:' || NEW.tenant_id END
            FOR UPDATE;
        IF head_seq IS NOT NULL AND NEW.seq > head_seq THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit entries are append-only: seq % is not above its chain head', NEW.seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

SEAL_ONCE = f"""
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('{PURGE_SETTING}', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE'
        AND OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
        AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL
        AND (to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash') = (to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash') THEN
        RETURN NEW;  -- the sealer, once
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

TRIGGER = f"""
CREATE TRIGGER audit_entry_append_only
    BEFORE UPDATE OR DELETE ON "{TABLE}"
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()
"""


def _next_month(day):
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def chain_unique_indexes_sql(partition: str) -> list[str]:
    """The chain's unique numbering on one partition (also used by audit/partitions.py)."""
    return [
        f'CREATE UNIQUE INDEX IF NOT EXISTS "{partition}_chain_seq" ON "{partition}" (tenant_id, seq)',
        f'CREATE UNIQUE INDEX IF NOT EXISTS "{partition}_platform_seq" ON "{partition}" (seq) WHERE tenant_id IS NULL',
    ]


def _is_partitioned(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE])
    return cursor.fetchone() is not None


def _indexes(cursor, table: str, skip: set[str]) -> list[str]:
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
        [table],
    )
    # A partitioned table's own indexes read "ON ONLY <table>": recreated on a plain table without it.
    return [definition.replace(" ON ONLY ", " ON ") for name, definition in cursor.fetchall() if name not in skip]


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _is_partitioned(cursor):
            return
        cursor.execute(f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE')
        indexes = _indexes(cursor, TABLE, {f"{TABLE}_pkey", UNIQUE_SEQ, UNIQUE_PLATFORM_SEQ})
        cursor.execute(f'SELECT min(created_at), max(id) FROM "{TABLE}"')
        oldest, max_id = cursor.fetchone()

        cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{OLD}"')
        cursor.execute(
            f'CREATE TABLE "{TABLE}" (LIKE "{OLD}" INCLUDING CONSTRAINTS) PARTITION BY RANGE (created_at)'
        )
        today = dt.datetime.now(dt.UTC).date()
        month = (oldest.astimezone(dt.UTC).date() if oldest else today).replace(day=1)
        last = today.replace(day=1)
        for _ in range(MONTHS_AHEAD):
            last = _next_month(last)
        partitions = []
        while month <= last:
            name = f"{TABLE}_{month:%Y_%m}"
            cursor.execute(
                f'CREATE TABLE "{name}" PARTITION OF "{TABLE}" '
                f"FOR VALUES FROM ('{month:%Y-%m-%d} 00:00:00+00') TO ('{_next_month(month):%Y-%m-%d} 00:00:00+00')"
            )
            partitions.append(name)
            month = _next_month(month)
        cursor.execute(f'CREATE TABLE "{TABLE}_default" PARTITION OF "{TABLE}" DEFAULT')
        partitions.append(f"{TABLE}_default")
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{OLD}"')
        cursor.execute(f'DROP TABLE "{OLD}"')  # its trigger and identity sequence with it

        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (id, created_at)')
        for definition in indexes:
            cursor.execute(definition)  # read before the rename: it names the table by its own name
        for name in partitions:
            for statement in chain_unique_indexes_sql(name):
                cursor.execute(statement)
        cursor.execute(f'CREATE SEQUENCE "{TABLE}_id_seq" OWNED BY "{TABLE}".id')
        cursor.execute(f"""ALTER TABLE "{TABLE}" ALTER COLUMN id SET DEFAULT nextval('"{TABLE}_id_seq"')""")
        if max_id:
            cursor.execute("SELECT setval(%s, %s)", [f"{TABLE}_id_seq", max_id])
        cursor.execute(SEAL_ONCE_ABOVE_HEAD)
        cursor.execute(TRIGGER)
        # New tables have no statistics (and autovacuum never analyzes a partitioned parent): without
        # them the sealer's UPDATE by id is planned as scans of every month (measured: 31 entries/s
        # instead of ~1,000/s on 1M entries).
        cursor.execute(f'ANALYZE "{TABLE}"')


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not _is_partitioned(cursor):
            return
        cursor.execute(f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE')
        indexes = _indexes(cursor, TABLE, {f"{TABLE}_pkey"})
        cursor.execute(f'SELECT max(id) FROM "{TABLE}"')
        (max_id,) = cursor.fetchone()

        cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{PARTITIONED_OLD}"')
        cursor.execute(f'CREATE TABLE "{TABLE}" (LIKE "{PARTITIONED_OLD}" INCLUDING CONSTRAINTS)')
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{PARTITIONED_OLD}"')
        cursor.execute(f'DROP TABLE "{PARTITIONED_OLD}"')  # its partitions, trigger and sequence with it

        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (id)')
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{UNIQUE_SEQ}" UNIQUE (tenant_id, seq)')
        cursor.execute(f'CREATE UNIQUE INDEX "{UNIQUE_PLATFORM_SEQ}" ON "{TABLE}" (seq) WHERE tenant_id IS NULL')
        for definition in indexes:
            cursor.execute(definition)
        cursor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY')
        if max_id:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('\"{TABLE}\"', 'id'), %s)", [max_id])
        cursor.execute(SEAL_ONCE)
        cursor.execute(TRIGGER)
        cursor.execute(f'ANALYZE "{TABLE}"')


class Migration(migrations.Migration):
    atomic = True

    dependencies = [("audit", "0006_signed_checkpoints")]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]

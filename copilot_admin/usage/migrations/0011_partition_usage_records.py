"""Usage records become a table partitioned by month of `created_at` (PostgreSQL only;
docs/SCALING.md, section 2; copilot_admin/usage/partitions.py keeps months created ahead).

In place, in one transaction: the table is renamed, a partitioned table with the same columns,
checks and defaults takes its name, its months (from the oldest row's to three ahead) and a
default partition are created, the rows are copied, and the old table is dropped; then the
indexes and foreign keys are created again under their names, and the id sequence continues
from the highest id. The primary key becomes (id, created_at) and the request id's uniqueness
(request_id, created_at), as PostgreSQL requires the partition key in every unique constraint;
ids still come from one sequence and request ids are random, generated here. The Django model
is unchanged (its state keeps `id` as the key). Fine for tables up to a few million rows in a
maintenance window; a larger table follows the backfill steps in docs/SCALING.md instead.

Reversing leaves the partitioned table in place: it serves the earlier schema as well.
"""

import datetime as dt

from django.db import migrations

TABLE = "usage_usagerecord"
OLD = "usage_usagerecord_unpartitioned"
MONTHS_AHEAD = 3


def _next_month(day):
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [TABLE])
        if cursor.fetchone():
            return
        cursor.execute(f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE')
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
            [TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [TABLE],
        )
        foreign_keys = cursor.fetchall()
        cursor.execute(f'SELECT min(created_at), max(id) FROM "{TABLE}"')
        oldest, max_id = cursor.fetchone()

        cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{OLD}"')
        cursor.execute(
            f'CREATE TABLE "{TABLE}" (LIKE "{OLD}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
            "PARTITION BY RANGE (created_at)"
        )
        month = (oldest.date() if oldest else dt.datetime.now(dt.UTC).date()).replace(day=1)
        last = _next_month(dt.datetime.now(dt.UTC).date().replace(day=1))
        for _ in range(MONTHS_AHEAD - 1):
            last = _next_month(last)
        while month <= last:
            cursor.execute(
                f'CREATE TABLE "{TABLE}_{month:%Y_%m}" PARTITION OF "{TABLE}" '
                f"FOR VALUES FROM ('{month:%Y-%m-%d} 00:00:00+00') TO ('{_next_month(month):%Y-%m-%d} 00:00:00+00')"
            )
            month = _next_month(month)
        cursor.execute(f'CREATE TABLE "{TABLE}_default" PARTITION OF "{TABLE}" DEFAULT')
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{OLD}"')
        cursor.execute(f'DROP TABLE "{OLD}"')

        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (id, created_at)')
        cursor.execute(
            f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_request_id_key" UNIQUE (request_id, created_at)'
        )
        for name, definition in indexes:
            if name in (f"{TABLE}_pkey", f"{TABLE}_request_id_key"):
                continue
            cursor.execute(definition)  # read before the rename: it names the table by its own name
        for name, definition in foreign_keys:
            cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(f'CREATE SEQUENCE "{TABLE}_id_seq" OWNED BY "{TABLE}".id')
        cursor.execute(f"""ALTER TABLE "{TABLE}" ALTER COLUMN id SET DEFAULT nextval('"{TABLE}_id_seq"')""")
        if max_id:
            cursor.execute("SELECT setval(%s, %s)", [f"{TABLE}_id_seq", max_id])


class Migration(migrations.Migration):
    atomic = True

    dependencies = [("usage", "0010_notification_kinds_merged")]

    operations = [migrations.RunPython(partition, migrations.RunPython.noop, elidable=False)]

"""Fresh planner statistics for the usage records after 0011 made the table partitioned
(PostgreSQL only; docs/SCALING.md, section 2).

0011 copies every row into the new partitions without `ANALYZE`: until autovacuum gets to
them, the planner guesses their sizes, and the dashboard's and exports' plans can be poor.
Cheap on a small table; on a large one it reads a sample of each partition.
"""

from django.db import migrations


def analyze(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute('ANALYZE "usage_usagerecord"')


class Migration(migrations.Migration):
    dependencies = [("usage", "0011_partition_usage_records")]

    operations = [migrations.RunPython(analyze, migrations.RunPython.noop, elidable=True)]

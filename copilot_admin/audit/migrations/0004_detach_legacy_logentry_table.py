"""django-auditlog's own `auditlog_logentry` table outlives the swap to `audit.AuditEntry`: its
migrations (3.4.1) create it whatever AUDITLOG_LOGENTRY_MODEL says (jazzband/django-auditlog#804),
and nothing writes to it any more. Its foreign keys to users and content types would make
every TRUNCATE of those tables fail (Django's flush, so every transactional test).

An empty table (a new installation) is dropped. A table holding rows (an installation that
ran the old LogEntry bridge, whose every row was copied into the hash chain) is kept as it is,
for the operator to archive or drop, but without its foreign keys: audit data is never
deleted by a migration."""

from django.db import migrations

LEGACY_TABLE = "auditlog_logentry"

DROP_FOREIGN_KEYS = f"""
DO $$
DECLARE constraint_name text;
BEGIN
    FOR constraint_name IN
        SELECT conname FROM pg_constraint WHERE conrelid = '{LEGACY_TABLE}'::regclass AND contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE {LEGACY_TABLE} DROP CONSTRAINT %I', constraint_name);
    END LOOP;
END $$;
"""


def detach_legacy_table(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if LEGACY_TABLE not in connection.introspection.table_names(cursor):
            return
        cursor.execute(f"SELECT 1 FROM {LEGACY_TABLE} LIMIT 1")
        if cursor.fetchone() is None:
            cursor.execute(f"DROP TABLE {LEGACY_TABLE}")
        elif connection.vendor == "postgresql":
            cursor.execute(DROP_FOREIGN_KEYS)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0003_audit_entry_is_the_log_entry_model"),
        ("auditlog", "0017_add_actor_email"),
    ]

    operations = [migrations.RunPython(detach_legacy_table, migrations.RunPython.noop)]

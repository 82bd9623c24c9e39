"""The audit entry becomes django-auditlog's log entry model (AUDITLOG_LOGENTRY_MODEL): the
same table and rows, plus the content type of changed objects. Entries are appended unsealed
(seq, prev_hash, hash empty) and sealed later, so those columns may be empty; on PostgreSQL
the append-only trigger now lets exactly one UPDATE through per entry: setting those three
columns, once, from empty, with nothing else changed. Existing entries are sealed already
and keep verifying."""

from importlib import import_module

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

PostgreSQLOnlySQL = import_module("copilot_admin.audit.migrations.0002_append_only_trigger").PostgreSQLOnlySQL
PURGE_SETTING = "copilot_admin.audit_purge"

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

APPEND_ONLY = f"""
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('{PURGE_SETTING}', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_append_only_trigger'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('tenants', '0002_membership_invitations'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='auditentry',
            options={'default_manager_name': 'unscoped_objects', 'get_latest_by': 'id', 'ordering': ['-id'], 'verbose_name': 'audit entry', 'verbose_name_plural': 'audit entries'},
        ),
        migrations.AddField(
            model_name='auditentry',
            name='content_type',
            field=models.ForeignKey(blank=True, db_constraint=False, editable=False, help_text="The changed object's model (model changes only).", null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='contenttypes.contenttype'),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='hash',
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='prev_hash',
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='seq',
            field=models.BigIntegerField(editable=False, help_text="Position in the tenant's (or the platform) chain; empty until sealed.", null=True),
        ),
        migrations.AddIndex(
            model_name='auditentry',
            index=models.Index(condition=models.Q(('seq__isnull', True)), fields=['tenant', 'id'], name='audit_unsealed_idx'),
        ),
        PostgreSQLOnlySQL(SEAL_ONCE, APPEND_ONLY),
    ]

"""Auditors read the directory: the seeded Compliance Auditor role (and the Tenant
Administrator, which holds every permission) of every existing tenant gains `directory.view`.
Each change is recorded in the tenant's audit log (by the system), as a service would."""

from django.db import migrations
from django.utils import timezone

DIRECTORY_VIEW = "directory.view"
AUDITOR_DESCRIPTION = (
    "Reads the audit log, usage, users, roles and companies, exports the audit log; changes nothing."
)
ROLES = ("Compliance Auditor", "Tenant Administrator")


def grant_directory_view(apps, schema_editor):
    SecurityRole = apps.get_model("access", "SecurityRole")
    AuditEntry = apps.get_model("audit", "AuditEntry")
    # Every tenant's system roles: a migration runs outside any tenant.
    for role in SecurityRole._default_manager.filter(is_system=True, name__in=ROLES).order_by("pk"):
        if DIRECTORY_VIEW in role.permissions:
            continue
        before = sorted(role.permissions)
        role.permissions = sorted({*role.permissions, DIRECTORY_VIEW})
        changes = {"permissions": [before, role.permissions]}
        if role.name == "Compliance Auditor" and role.description != AUDITOR_DESCRIPTION:
            changes["description"] = [role.description, AUDITOR_DESCRIPTION]
            role.description = AUDITOR_DESCRIPTION
        role.save(update_fields=["permissions", "description"])
        AuditEntry._default_manager.bulk_create([AuditEntry(
            tenant_id=role.tenant_id, created_at=timezone.now(), actor_id=None, actor_email="", actor_type="system",
            remote_addr="", action="role.update", object_type="role", object_id=str(role.pk), object_repr=role.name,
            changes=changes, metadata={"raw": {}, "migration": "access.0003_auditors_read_the_directory"},
            outcome="success", correlation_id="",
        )])


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0002_initial"),
        ("audit", "0005_indexes_for_growth"),
    ]

    operations = [migrations.RunPython(grant_directory_view, migrations.RunPython.noop)]

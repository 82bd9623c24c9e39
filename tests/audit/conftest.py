"""Helpers for the audit tests."""

import pytest

from copilot_admin.audit.models import AuditEntry


def entries(tenant=None, **filters):
    """A chain's entries (the tenant's, or the platform chain for None), oldest first, sealed
    first (as the periodic sealer would have done by the time anyone reads them)."""
    from copilot_admin.audit.services import audit_seal

    tenant = getattr(tenant, "tenant", tenant)  # a TenantWorld or a Tenant
    audit_seal(tenant_id=getattr(tenant, "pk", tenant))
    return AuditEntry.objects.for_chain(tenant).filter(**filters).order_by("seq")


def object_entries(model, pk=None):
    """The entries of one object (an instance, or a model and an id), whatever its chain,
    sealed first, oldest first: what django-auditlog's `get_for_object` gives."""
    from django.contrib.contenttypes.models import ContentType

    from copilot_admin.audit.services import audit_seal

    if pk is None:
        model, pk = type(model), model.pk
    audit_seal()
    # across_tenants(): a test looks up one object's entries in whichever chain holds them.
    return AuditEntry.objects.across_tenants().filter(
        content_type=ContentType.objects.get_for_model(model), object_id=str(pk)
    ).order_by("seq", "id")


@pytest.fixture
def audit_entries():
    return entries


def chain_fill(tenant, count: int, *, repr_size: int = 40, action: str = "test.bulk") -> None:
    """Append `count` well-formed, sealed entries to the tenant's chain quickly (one bulk
    insert), as entry_append and the sealer would have written them one by one."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from copilot_admin.audit.chain import entry_hash
    from copilot_admin.audit.services import _lock_head, audit_seal

    tenant = getattr(tenant, "tenant", tenant)
    audit_seal(tenant_id=tenant.pk)
    with transaction.atomic():
        head = _lock_head(tenant.pk)
        start, rows, previous = timezone.now(), [], head.hash
        for i in range(1, count + 1):
            fields = {
                "tenant_id": tenant.pk, "seq": head.seq + i, "created_at": start + timedelta(microseconds=i),
                "actor_id": None, "actor_email": "", "actor_type": "system", "remote_addr": "192.0.2.1",
                "action": action, "object_type": "company", "object_id": str(i),
                "object_repr": f"Object {i} ".ljust(repr_size, "x"), "changes": {"name": [f"old {i}", f"new {i}"]},
                "metadata": {"n": i}, "outcome": "success", "correlation_id": f"c{i}", "prev_hash": previous,
            }
            fields["hash"] = previous = entry_hash(fields)
            rows.append(AuditEntry(**fields))
        AuditEntry.unscoped_objects.bulk_create(rows, batch_size=2000)
        head.seq, head.hash = head.seq + count, previous
        head.save(update_fields=["seq", "hash"])

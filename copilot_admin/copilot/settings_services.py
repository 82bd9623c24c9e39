"""The tenant's copilot switches: the master switch and one switch per feature."""

from django.db import transaction

from copilot_admin.access.permissions import Perm, feature_names
from copilot_admin.access.policy import permission_require
from copilot_admin.audit.services import audit_change_record, audit_snapshot
from copilot_admin.core.errors import ApplicationError
from tenants.models import Membership, Tenant


@transaction.atomic
def tenant_copilot_settings_update(*, actor: Membership, copilot_enabled=None, features=None) -> Tenant:
    """The tenant's master switch and per-feature switches (features: {feature: bool}), for
    an actor who manages the copilot settings; recorded in the tenant's audit log."""
    permission_require(actor=actor, permission=Perm.COPILOT_SETTINGS)
    tenant = Tenant.objects.select_for_update().get(pk=actor.tenant_id)
    before = audit_snapshot(tenant)
    if features is not None:
        unknown = sorted(set(features) - set(feature_names()))
        if unknown:
            raise ApplicationError(f"Unknown feature(s): {', '.join(unknown)}.", fields={"features": unknown})
        tenant.feature_switches = {**tenant.feature_switches, **{k: bool(v) for k, v in features.items()}}
    if copilot_enabled is not None:
        tenant.copilot_enabled = bool(copilot_enabled)
    tenant.save()
    audit_change_record(actor=actor, tenant=tenant, instance=tenant, before=before)
    return tenant



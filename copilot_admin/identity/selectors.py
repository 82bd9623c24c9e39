"""Reads of identity: a tenant's integration keys, a key by its secret, the member a key acts for."""

from hmac import compare_digest

from django.db.models import QuerySet

from copilot_admin.identity.keys import key_digest, key_id_of, looks_like_key
from copilot_admin.identity.models import IntegrationKey
from tenants.models import Membership, Tenant


def integration_keys_of(*, tenant: Tenant) -> QuerySet[IntegrationKey]:
    """The tenant's keys, newest first, revoked ones included (the list shows them as such)."""
    return IntegrationKey.objects.for_tenant(tenant).select_related("created_by").order_by("-created_at", "-id")


def integration_key_by_secret(*, secret: str) -> IntegrationKey | None:
    """The key whose public head starts `secret` and whose stored digest is the secret's
    (compared in constant time), with its tenant; None when there is none. Revoked and expired
    keys are returned too: the caller answers them."""
    if not looks_like_key(secret):
        return None
    # unscoped(): a key names its tenant; the secret is all the request holds before the
    # tenant is known (the resolver then refuses the key on any other tenant's routes).
    key = (
        IntegrationKey.objects.unscoped()
        .select_related("tenant", "tenant__zone")
        .filter(key_id=key_id_of(secret))
        .first()
    )
    if key is None or not compare_digest(key.digest, key_digest(secret)):
        return None
    return key


def _members(tenant: Tenant) -> QuerySet[Membership]:
    return (
        Membership.objects.for_tenant(tenant)
        .granting_access()
        .filter(user__is_active=True)
        .select_related("role", "user", "tenant", "tenant__zone")
    )


def acting_membership(*, tenant: Tenant, email: str) -> Membership | None:
    """The accepted, active membership of the user with this e-mail in `tenant` (None: an
    unknown, inactive or foreign member, or a pending invitation)."""
    return _members(tenant).filter(user__email__iexact=email).first()


def creator_membership(*, key: IntegrationKey) -> Membership | None:
    """The accepted, active membership of the key's creator in the key's tenant (a read key
    reads as its creator, capped to what an auditor reads)."""
    if key.created_by_id is None:
        return None
    return _members(key.tenant).filter(user_id=key.created_by_id).first()

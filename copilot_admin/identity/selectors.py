"""Reads of identity: a tenant's integration keys, a key by its secret, the member a key acts for."""

from hmac import compare_digest

from django.db.models import QuerySet

from copilot_admin.core.memo import BoundedMemo
from copilot_admin.core.versioned_cache import cached, cached_fact, planned_reads_fetch, tenant_scope
from copilot_admin.identity.keys import key_digest, key_id_of, looks_like_key
from copilot_admin.identity.models import IntegrationKey
from tenants.models import Membership, Tenant


def integration_keys_of(*, tenant: Tenant) -> QuerySet[IntegrationKey]:
    """The tenant's keys, newest first, revoked ones included (the list shows them as such)."""
    return IntegrationKey.objects.for_tenant(tenant).select_related("created_by").order_by("-created_at", "-id")


def integration_key_scope(key_id: str) -> str:
    """The versioned-cache scope of one key: bumped by every save or delete of it (revoke,
    rotate, delete: `IdentityConfig.ready` registers it), so a cached copy is read again on
    the next call."""
    return f"integration-key:{key_id}"


# key id -> its tenant's slug, for keys seen by this process: a fact (see `_key_tenant_slug`),
# so the memo cannot be wrong; a revoked or deleted key is refused by its row's version check.
# Bounded: emptied when full.
_key_tenants: BoundedMemo[str, str] = BoundedMemo()


def _key_tenant_slug(key_id: str) -> str | None:
    """The slug of the tenant a key belongs to: a key never changes tenant (nor a tenant its
    slug), so it is cached without a version, and kept by the process once known; an unknown
    key id is not cached."""
    slug = _key_tenants.get(key_id)
    if slug is not None:
        return slug
    # unscoped(): the key's public head is all the request holds before the tenant is known.
    slug = cached_fact(
        f"integration-key-tenant:{key_id}",
        lambda: IntegrationKey.objects.unscoped().filter(key_id=key_id).values_list("tenant__slug", flat=True).first(),
    )
    if slug is not None:
        _key_tenants.remember(key_id, slug)
    return slug


def _key_row(key_id: str) -> IntegrationKey | None:
    # unscoped(): a key names its tenant; the resolver then refuses it on any other tenant's routes.
    return IntegrationKey.objects.unscoped().select_related("tenant", "tenant__zone").filter(key_id=key_id).first()


def integration_key_by_secret(*, secret: str) -> IntegrationKey | None:
    """The key whose public head starts `secret` and whose stored digest is the secret's
    (compared in constant time), with its tenant; None when there is none. Revoked and expired
    keys are returned too: the caller answers them.

    The row (with its tenant and zone) comes from the versioned cache (core/versioned_cache.py),
    stamped with the versions of the key and of its tenant: revoking, rotating or deleting the
    key, or any change to its tenant, makes the copy stale, so the next call reads the
    database and is refused there. The digest is still compared on every call."""
    if not looks_like_key(secret):
        return None
    key_id = key_id_of(secret)
    slug = _key_tenant_slug(key_id)
    if slug is None:
        return None
    key = cached(f"integration-key:{key_id}", (tenant_scope(slug), integration_key_scope(key_id)),
                 lambda: _key_row(key_id))
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
    unknown, inactive or foreign member, or a pending invitation).

    Once the member is known, the request's planned reads (the copilot call's access chain)
    come in one cache round trip (`planned_reads_fetch`), as for an API token's owner. The
    process keeps which user an e-mail named (a hint, never trusted alone): a warm call reads
    that user's membership from the versioned cache and uses it only when it still grants
    access, to an active user with this e-mail (compared as the database does, ignoring case);
    anything else (the e-mail changed hands, the member left) is decided by the database."""
    # Here, not at the top: DRF imports this module (through `identity.authentication`) while
    # it loads itself, before the modules `tenants.selectors` imports can be.
    from tenants.selectors import membership_granting_access

    hint_key = (tenant.pk, email)
    user_id = _acting_hints.get(hint_key)
    if user_id is not None:
        planned_reads_fetch(user_id)
        membership = membership_granting_access(tenant_slug=tenant.slug, user_id=user_id)
        if membership is not None and membership.user.is_active and membership.user.email.upper() == email.upper():
            return membership
        _acting_hints.pop(hint_key, None)
    membership = _members(tenant).filter(user__email__iexact=email).first()
    if membership is not None:
        _acting_hints.remember(hint_key, membership.user_id)
        planned_reads_fetch(membership.user_id)
    return membership


# (tenant id, e-mail as sent) -> the user id it named when last read from the database: a hint for
# `acting_membership`, checked against the member's versioned row on every use. Bounded.
_acting_hints: BoundedMemo[tuple[int, str], int] = BoundedMemo()


def creator_membership(*, key: IntegrationKey) -> Membership | None:
    """The accepted, active membership of the key's creator in the key's tenant (a read key
    reads as its creator, capped to what an auditor reads)."""
    if key.created_by_id is None:
        return None
    return _members(key.tenant).filter(user_id=key.created_by_id).first()

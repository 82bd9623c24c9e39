"""Writes of identity: integration keys (create, revoke, note their use).

A key's row is read through the versioned cache (`selectors.integration_key_by_secret`); every
save or delete of a key bumps its version (registered in `IdentityConfig.ready`), so a revoked
key is refused on its next call.

Each write takes the acting membership, checks `admin.integrations` in the key's tenant
through the policy function, and records itself in the tenant's audit log in its transaction.
The secret exists in clear only in the return value of `integration_key_create`.
"""

import ipaddress
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from copilot_admin.access.permissions import Perm
from copilot_admin.access.policy import permission_require
from copilot_admin.audit.services import audit_change_record, audit_snapshot
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.memo import BoundedMemo
from copilot_admin.identity.keys import key_digest, key_id_of, key_secret_new
from copilot_admin.identity.models import IntegrationKey, IntegrationKeyScope
from tenants.models import Membership

MAX_ALLOWED_ADDRESSES = 32
# How often a key's `last_used_at` is written at most (a call every second must not write every second).
LAST_USE_RESOLUTION = timedelta(minutes=1)


def _clean_name(name) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or len(name) > 100:
        raise ApplicationError("Name the key (at most 100 characters).", fields={"name": ["required"]})
    return name


def _clean_scopes(scopes) -> list[str]:
    if not isinstance(scopes, (list, tuple)) or not scopes:
        raise ApplicationError("Give the key at least one scope.", fields={"scopes": ["required"]})
    unknown = sorted({str(scope) for scope in scopes} - set(IntegrationKeyScope.values))
    if unknown:
        raise ApplicationError(f"Unknown scope(s): {', '.join(unknown)}.", fields={"scopes": unknown})
    return sorted(set(scopes))


def _clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The expiry must be in the future.", fields={"expires_at": ["in the past"]})
    return expires_at


def clean_allowed_addresses(addresses) -> list[str]:
    """The allow-list as normalized CIDR networks (`10.0.0.7` becomes `10.0.0.7/32`); host bits
    set in a network are refused rather than silently widened."""
    if addresses is None:
        return []
    if not isinstance(addresses, (list, tuple)) or len(addresses) > MAX_ALLOWED_ADDRESSES:
        raise ApplicationError(
            f"Give at most {MAX_ALLOWED_ADDRESSES} addresses or networks.", fields={"allowed_addresses": ["invalid"]}
        )
    networks = []
    for address in addresses:
        try:
            networks.append(str(ipaddress.ip_network(str(address).strip(), strict=True)))
        except ValueError:
            raise ApplicationError(
                f"Not an address or CIDR network: {str(address)[:64]!r}.", fields={"allowed_addresses": ["invalid"]}
            ) from None
    return sorted(set(networks))


@transaction.atomic
def integration_key_create(
    *,
    actor: Membership,
    name: str,
    scopes,
    expires_at: datetime | None = None,
    allowed_addresses=(),
) -> tuple[IntegrationKey, str]:
    """A new key of the actor's tenant, and its secret (shown once; only its digest is kept)."""
    permission_require(actor=actor, permission=Perm.INTEGRATIONS)
    tenant = actor.tenant
    values = {
        "name": _clean_name(name),
        "scopes": _clean_scopes(scopes),
        "expires_at": _clean_expiry(expires_at),
        "allowed_addresses": clean_allowed_addresses(allowed_addresses),
    }
    secret = key_secret_new()
    key = IntegrationKey.objects.for_tenant(tenant).create(
        tenant=tenant, key_id=key_id_of(secret), digest=key_digest(secret),
        created_by=actor.user, **values,
    )
    audit_change_record(actor=actor, tenant=tenant, instance=key, action="integration_key.create")
    return key, secret


@transaction.atomic
def integration_key_revoke(*, actor: Membership, key: IntegrationKey) -> IntegrationKey:
    """Revoke a key for good (it stays listed). Revoking a revoked key changes nothing."""
    permission_require(actor=actor, permission=Perm.INTEGRATIONS, tenant=key.tenant_id)
    tenant = actor.tenant
    key = IntegrationKey.objects.for_tenant(tenant).select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        before = audit_snapshot(key)
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_change_record(actor=actor, tenant=tenant, instance=key, before=before,
                            action="integration_key.revoke")
    return key


def integration_key_mark_used(*, key: IntegrationKey, now: datetime | None = None) -> None:
    """Note that the key was used: at most once per minute (`LAST_USE_RESOLUTION`) per key,
    across processes (the first call of each minute claims it in the shared cache; the key's
    cached row may carry an older `last_used_at`, so that alone cannot tell). One UPDATE, no
    lock held beyond it, no signal (so the key's cached row stays valid). Bookkeeping of the
    system, not a change anyone made: not audited."""
    now = now or timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USE_RESOLUTION:
        return
    window = int(now.timestamp() // LAST_USE_RESOLUTION.total_seconds())
    if _used_windows.get(key.key_id) == window:
        return  # this process claimed this minute, or saw it claimed: no round trip to ask again
    try:
        first = cache.add(f"{settings.INTEGRATION_KEY_RATE_KEY_PREFIX}used:{key.key_id}:{window}", 1,
                          timeout=int(2 * LAST_USE_RESOLUTION.total_seconds()))
    except Exception:  # noqa: BLE001 - the cache is down: note the use (the UPDATE is harmless)
        first = True
    _used_windows.remember(key.key_id, window)
    if not first:
        return
    IntegrationKey.objects.for_tenant(key.tenant).filter(pk=key.pk).update(last_used_at=now)
    key.last_used_at = now


# key id -> the last minute (`LAST_USE_RESOLUTION` window) whose use this process claimed or saw
# claimed. Bounded: emptied when full (a forgotten key costs one more `add` that minute).
_used_windows: BoundedMemo[str, int] = BoundedMemo()

"""What an integration key may do in a tenant, and for whom: the `IntegrationKeyCredential` the
resolver asks (`access.credentials.DelegatedCredential`). The steps and their answers are in
`identity.authentication`'s docstring."""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS

from copilot_admin.access.credentials import DelegatedCredential
from copilot_admin.access.permissions import ANY_MEMBER, copilot_grants
from copilot_admin.access.services import system_roles
from copilot_admin.audit.models import Outcome
from copilot_admin.audit.services import audit_event_record
from copilot_admin.core.client_ip import client_ip
from copilot_admin.core.errors import ApplicationError, NotFound, PermissionRefused
from copilot_admin.identity.models import IntegrationKey, IntegrationKeyScope
from copilot_admin.identity.networks import address_allowed
from copilot_admin.identity.selectors import acting_membership, creator_membership
from copilot_admin.identity.services import integration_key_mark_used

AUDITOR_ROLE = "Compliance Auditor"
RATE_WINDOW_SECONDS = 60


def read_scope_permissions() -> frozenset[str]:
    """What a `read` key may use: the seeded Compliance Auditor role's permissions (derived,
    not repeated: a change of that role's definition changes what read keys read)."""
    spec = next(role for role in system_roles() if role["name"] == AUDITOR_ROLE)
    return frozenset(spec["permissions"])


def _clock() -> float:
    return time.time()


class IntegrationKeyCredential(DelegatedCredential):
    """`request.auth` of a request made with an integration key (see the module docstring)."""

    def __init__(self, key: IntegrationKey, *, method: str):
        self.key = key
        self.public_id = key.key_id
        self.scopes = frozenset(key.scopes)
        self.safe = method in SAFE_METHODS
        cap = set()
        if IntegrationKeyScope.COPILOT in self.scopes:
            cap |= copilot_grants()
        if IntegrationKeyScope.READ in self.scopes and self.safe:
            cap |= read_scope_permissions()
        self.permission_cap = frozenset(cap)

    def caps(self, permission) -> bool:
        if permission is ANY_MEMBER:
            return IntegrationKeyScope.READ in self.scopes and self.safe
        return permission in self.permission_cap

    def delegate(self, *, request, tenant_slug: str, permissions: tuple):
        key = self.key
        if key.tenant.slug != tenant_slug:
            raise NotFound("Not found.")
        if not address_allowed(client_ip(request), key.allowed_addresses):
            self._refused(request, "address_not_allowed")
            raise PermissionRefused("This integration key is not allowed from this address.",
                                    code="address_not_allowed")
        self._count(request)
        usable = [permission for permission in permissions if permission is not None and self.caps(permission)]
        if not usable:
            self._refused(request, "permission_denied")
            raise PermissionRefused("This integration key's scopes do not allow this action.")
        if any(permission in copilot_grants() for permission in usable):
            email = _acting_user(request)
            membership = acting_membership(tenant=key.tenant, email=email)
        else:
            membership = creator_membership(key=key)
        if membership is None:
            self._refused(request, "permission_denied", member_unknown=True)
            raise PermissionRefused("The member this integration key acts for cannot use this action.")
        integration_key_mark_used(key=key)
        return membership

    def _count(self, request) -> None:
        """The key's own rate: a fixed window per key and minute, counted atomically in the
        cache (Redis in production: INCR)."""
        limit = settings.INTEGRATION_KEY_REQUESTS_PER_MINUTE
        if limit <= 0:
            return
        now = _clock()
        window = int(now // RATE_WINDOW_SECONDS)
        name = f"{settings.INTEGRATION_KEY_RATE_KEY_PREFIX}{self.key.key_id}:{window}"
        try:
            count = _window_count(name, timeout=2 * RATE_WINDOW_SECONDS)
        except Exception:  # noqa: BLE001 - the cache is down: fail closed, as the usage limits do
            raise ApplicationError(
                "The integration key's rate cannot be checked right now.", code="limits_unavailable", status_code=503
            ) from None
        if count > limit:
            self._refused(request, "rate_limited")
            raise exceptions.Throttled(wait=max(1, RATE_WINDOW_SECONDS - int(now % RATE_WINDOW_SECONDS)))

    def _refused(self, request, code: str, *, member_unknown: bool = False) -> None:
        metadata = {"code": code, "method": request.method, "path": request.path, "scopes": sorted(self.scopes)}
        if member_unknown:
            metadata["member"] = "unknown, inactive or not a member"
        audit_event_record(
            tenant=self.key.tenant, actor=None, action="integration_key.refused", object_type="integration_key",
            object_id=self.key.key_id, object_repr=str(self.key), outcome=Outcome.DENIED, request=request,
            metadata=metadata,
        )


def _window_count(name: str, *, timeout: int) -> int:
    """Count one more request in the window counter `name` and return the count: with Redis
    one round trip (`SharedRedisCache.incr_expiring`), elsewhere the cache's `add` and `incr`."""
    incr_expiring = getattr(cache, "incr_expiring", None)
    if incr_expiring is not None:
        return incr_expiring(name, timeout=timeout)
    try:
        cache.add(name, 0, timeout=timeout)
        return cache.incr(name)
    except ValueError:  # the counter expired between add and incr: this is its first request
        cache.set(name, 1, timeout=timeout)
        return 1


def _acting_user(request) -> str:
    body = request.data
    email = body.get("acting_user") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip() or len(email) > 254:
        raise ApplicationError(
            "acting_user is required: the e-mail of the member the call is made for.",
            code="invalid_payload", fields={"acting_user": ["required"]},
        )
    return email.strip()

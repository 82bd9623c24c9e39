"""Who is asking, in which tenant, allowed to do what: resolved once per request, for every
kind of request (pages, API views and viewsets, the async copilot call, the operator console).

The base classes (`base_views`, `base_api`) call these functions and nothing else to let a
request in; a view never resolves a tenant or checks a permission itself.

`tenant_request_resolve` answers, in this order (first failure wins):
  1. the tenant and the caller's accepted, active membership, with a credential issued after
     the membership's last deactivation (else `NotFound`: missing and foreign tenants answer
     alike, a stranger cannot learn that a tenant exists);
  2. the tenant is active (else `PermissionRefused` `tenant_suspended`);
  3. the membership holds the declared permission (else the refusal is recorded in the
     tenant's audit log and `PermissionRefused` `permission_denied`);
  4. a platform operator's access to the tenant is recorded in its audit log (its auditors see it).
Steps 2 and 3 are left to the service when the base says so (the copilot call: its access
chain checks them in the contract's order and records each refusal itself).

A request made with a delegated credential (an integration key, `access.credentials`) is let
into the tenant through the credential (`delegate`: the member it acts for, or 404 / 403), and
every permission it uses must be in the credential's cap as well as held by that member; the
cap is checked also where the service checks the rest (the copilot call).

`TenantAccess.scope()` is the request's audit scope (the tenant, the channel, the request's
ids) for the handler to run in; it is reset on the way out, whatever happens.
"""

from contextlib import contextmanager
from dataclasses import dataclass

from copilot_admin.access.credentials import DelegatedCredential
from copilot_admin.access.policy import has_permission, permissions_of
from copilot_admin.audit.hooks import audit_access_denied, audit_operator_tenant_access
from copilot_admin.core.context import Channel, audit_scope, request_ids
from copilot_admin.core.errors import NotFound, PermissionRefused
from tenants.models import Membership, Tenant
from tenants.selectors import membership_resolve
from tenants.sessions import credential_issued_at


@dataclass(frozen=True)
class TenantAccess:
    """A request let into a tenant: the tenant, the caller's membership, what it holds."""

    tenant: Tenant
    membership: Membership
    permissions: frozenset[str]
    channel: str

    @contextmanager
    def scope(self, request):
        """The audit scope the handler runs in (entries name the tenant, channel and request)."""
        with audit_scope(tenant=self.tenant, channel=self.channel, **request_ids(request)) as scope:
            yield scope


def tenant_request_resolve(
    *, request, tenant_slug: str, permission, alternatives: tuple = (), channel: str, early_checks: bool = True
) -> TenantAccess:
    """Let an authenticated request into the tenant named by `tenant_slug` (module docstring).

    `permission` is what the view declares for this method or action (None: nothing declared,
    refused); `alternatives` are permissions that allow the action as well. With
    `early_checks=False` only steps 1 and 4 run. Sets `request.tenant`, `request.membership`
    and `request.permissions` (the layout reads them).
    """
    credential = getattr(request, "auth", None)
    if isinstance(credential, DelegatedCredential):
        membership = credential.delegate(request=request, tenant_slug=tenant_slug, permissions=(permission, *alternatives))
        request.user = membership.user  # the member the credential acts for, from here on
        held = frozenset(code for code in permissions_of(membership) if credential.caps(code))
    else:
        credential = None
        membership = membership_resolve(
            user=request.user, tenant_slug=tenant_slug, issued_at=credential_issued_at(request)
        )
        held = permissions_of(membership)
    tenant = membership.tenant
    access = TenantAccess(tenant=tenant, membership=membership, permissions=held, channel=channel)
    if early_checks and not tenant.is_active:
        raise PermissionRefused("This tenant is suspended.", code="tenant_suspended")
    request.membership, request.tenant, request.permissions = membership, tenant, access.permissions
    if early_checks:
        allowed = permission is not None and any(
            has_permission(membership, p) and (credential is None or credential.caps(p))
            for p in (permission, *alternatives)
        )
        if not allowed:
            audit_access_denied(request=request, membership=membership, permission=permission)
            what = "this page" if channel == Channel.WEB else "this action"
            raise PermissionRefused(f"Your security role does not allow {what}.")
    if request.user.is_platform_operator:
        with access.scope(request):
            audit_operator_tenant_access(request=request, tenant=tenant)
    return access


def platform_request_resolve(*, request, permission) -> None:
    """Let an authenticated request into the platform console (operators) or the audit log
    across tenants (platform auditors): anyone else gets `NotFound`, the console is not advertised."""
    if not has_permission(request.user, permission):
        raise NotFound("Not found.")

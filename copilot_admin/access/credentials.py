"""Credentials of systems that act in a tenant on a member's behalf (integration keys of PSA
servers, built in `identity`).

Such a credential is the request's `request.auth` (its DRF authentication class sets it). The
resolver (`access.resolver`) lets it in through `delegate` instead of the caller's own
membership, and caps what the member it acts for may do with `permission_cap`: a request is
allowed only when the member holds the declared permission AND the cap holds it. The class
lives here, below the rooms that build credentials, so the resolver knows the protocol without
importing them.
"""

from tenants.models import Membership


class DelegatedCredential:
    """A credential that acts for a member of one tenant. Subclasses implement `delegate`."""

    # The codes a request made with this credential may use at most (besides ANY_MEMBER reads
    # where the credential allows them); the member's own permissions are intersected with it.
    permission_cap: frozenset[str] = frozenset()
    # Its public identifier (never the secret): what audit entries and usage records name.
    public_id: str = ""

    def delegate(self, *, request, tenant_slug: str, permissions: tuple) -> Membership:
        """The membership the request acts for in the tenant named by `tenant_slug`, for a
        route declaring `permissions` (the declared one first, then its alternatives).

        Raises `NotFound` (another tenant's credential: never says the tenant exists),
        `PermissionRefused` (the credential's scopes do not allow the route; the member it
        names is unknown, inactive or foreign) or a DRF `Throttled` (the credential's own rate).
        """
        raise NotImplementedError

    def caps(self, permission) -> bool:
        """True when the cap allows `permission` (a code, or ANY_MEMBER)."""
        return permission in self.permission_cap

"""`Authorization: Bearer cak_...`: a PSA server's request made with an integration key.

`IntegrationKeyAuthentication` (first of DRF's authentication classes) answers only for a
bearer credential with the integration key's head and leaves every other one to the API
tokens: an unknown or revoked key is 401 `authentication_failed`, an expired one too. The
request's `auth` is then an `IntegrationKeyCredential`, which the resolver (`access.resolver`)
asks for the member the request acts for, in this order:

 1. the key belongs to the tenant of the route (else 404, as for any stranger);
 2. the client address is in the key's allow-list, when it has one (else 403 `address_not_allowed`);
 3. the key's own rate, per key and minute (`INTEGRATION_KEY_REQUESTS_PER_MINUTE`; 429
    `rate_limited` with Retry-After; 503 `limits_unavailable` when the cache cannot count);
 4. the key's scopes allow the route (else 403 `permission_denied`): `copilot` the copilot
    features' grants; `read` safe methods on what the seeded Compliance Auditor role reads
    (and what any member reads);
 5. the member: for a copilot call the member named by `acting_user` (e-mail) in the body, for
    a read the key's creator; an unknown, inactive or foreign member is 403 `permission_denied`.
Then the resolver and the copilot call's access chain run for that member, whose own
permissions, suspension, company scope and limits all still apply. Refusals at steps 2-5 are
recorded in the tenant's audit log as `integration_key.refused`, naming the key.

What a warm call costs: the key's row (one MGET, versioned: a revoked, rotated or deleted key
is read again and refused), the key's rate (one Redis round trip), and, once the member is
known, the access chain's reads in one MGET (`planned_reads_fetch`); no database read. The
process keeps the key's tenant, the minute of its last use, and which member an e-mail named
(a hint checked against that member's versioned row on every call: `acting_membership`).
"""

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from copilot_admin.identity.keys import KEY_PREFIX
from copilot_admin.identity.selectors import integration_key_by_secret


class IntegrationKeyPrincipal(AnonymousUser):
    """`request.user` of a request made with a valid key, until the resolver puts the member the
    key acts for in its place: authenticated, holding nothing (not a user, never an operator)."""

    is_platform_operator = False

    @property
    def is_authenticated(self):
        return True


class IntegrationKeyAuthentication(BaseAuthentication):
    """DRF authentication for `Authorization: Bearer cak_...` (see the module docstring).

    DRF imports this class while it loads itself, before the rooms this one builds on can be
    imported, so the credential it hands to the resolver (`identity.delegation`) is wired in
    when the app is ready (`IdentityConfig.ready`); unwired, every key is refused."""

    credential_class = None

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer" or not parts[1].startswith(KEY_PREFIX.encode()):
            return None  # not an integration key: the API tokens answer
        secret = parts[1].decode("latin-1")
        key = integration_key_by_secret(secret=secret)
        if key is None or key.is_revoked:
            raise exceptions.AuthenticationFailed("Invalid or revoked integration key.")
        if key.is_expired():
            raise exceptions.AuthenticationFailed("This integration key has expired.")
        if self.credential_class is None:
            raise exceptions.AuthenticationFailed("Integration keys are not available.")
        return IntegrationKeyPrincipal(), self.credential_class(key, method=request.method)

    def authenticate_header(self, request):
        return "Bearer"

"""Reads of the directory: invitations (signed, single-use links) and who they are for."""


from django.conf import settings
from django.core import signing
from django.db.models import QuerySet

from copilot_admin.access.permissions import all_permissions
from tenants.models import Membership, User


def invitation_token(*, membership: Membership) -> str:
    """The accept link's token: signed (not guessable, not enumerable), expiring."""
    return signing.dumps({"m": membership.pk, "u": membership.user_id}, salt=INVITATION_SALT, compress=True)


def invitation_resolve(*, token: str) -> Membership | None:
    """The pending membership a valid, unexpired accept link names; None otherwise."""
    try:
        data = signing.loads(token, salt=INVITATION_SALT, max_age=invitation_max_age_seconds())
    except signing.BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    return _invitations().filter(pk=data.get("m"), user_id=data.get("u")).first()


def invitation_pending(*, membership_id: int) -> Membership | None:
    """The pending invitation with this id (the invitation task loads it by id)."""
    return _invitations().filter(pk=membership_id).first()


def invitations_of_user(*, user: User) -> QuerySet[Membership]:
    """The invitations waiting for `user` to accept (shown to the user only)."""
    return _invitations().filter(user=user).order_by("tenant__name")


def invitations_of_created_account(*, user: User) -> QuerySet[Membership]:
    """The pending invitation that created `user`'s account (setting its password accepts it)."""
    return _invitations().filter(user=user, created_account=True)


def _invitations() -> QuerySet[Membership]:
    # unscoped(): an invitation is found by its link or its account, before it names a tenant
    # its user may enter; only pending memberships are returned.
    return Membership.objects.unscoped().pending().select_related("tenant", "role", "user")


INVITATION_SALT = "tenants.invitation"


def invitation_max_age_seconds() -> int:
    """How long an invitation link stays valid (`INVITATION_MAX_AGE_DAYS`, default 14)."""
    return settings.INVITATION_MAX_AGE_DAYS * 24 * 3600




def tenant_administrators(*, tenant) -> list[Membership]:
    """The tenant's memberships holding every permission (its administrators), invited or
    accepted, oldest first: what the operator console shows of a tenant's people."""
    everything = all_permissions()
    memberships = Membership.objects.for_tenant(tenant).select_related("user", "role").order_by("created_at")
    return [m for m in memberships if m.role.permission_set >= everything]

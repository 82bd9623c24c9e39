"""Reads of the directory: invitations (signed, single-use links) and who they are for."""


from django.core import signing
from django.db.models import QuerySet

from tenants.models import Membership, User


def invitation_token(*, membership: Membership) -> str:
    """The accept link's token: signed (not guessable, not enumerable), expiring."""
    return signing.dumps({"m": membership.pk, "u": membership.user_id}, salt=INVITATION_SALT, compress=True)


def invitation_resolve(*, token: str) -> Membership | None:
    """The pending membership a valid, unexpired accept link names; None otherwise."""
    try:
        data = signing.loads(token, salt=INVITATION_SALT, max_age=INVITATION_MAX_AGE)
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


INVITATION_MAX_AGE = 14 * 24 * 3600  # seconds an invitation link stays valid



"""Reads of the directory: invitations (signed, single-use links) and who they are for."""


from django.conf import settings
from django.core import signing
from django.db.models import QuerySet

from copilot_admin.access.permissions import all_permissions
from copilot_admin.core.humanize import counted
from tenants.models import ClientCompany, Membership, User


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


def company_references(*, company: ClientCompany) -> dict[str, int]:
    """What refers to `company`, by kind (`co-managed users`, then each other kind by its plural
    name, e.g. `usage records`), only the kinds with rows. Found from the model graph, so a room
    that adds a reference to client companies is counted without registering here."""
    found: dict[str, int] = {}
    for relation in ClientCompany._meta.get_fields(include_hidden=True):
        if not (relation.auto_created and not relation.concrete) or relation.related_model._meta.auto_created:
            continue  # forward fields, and the many-to-many's own table (counted through its relation)
        model = relation.related_model
        # A model without a tenant manager: its default manager, filtered by this (tenant-scoped) company.
        rows = (model.objects.for_tenant(company.tenant) if hasattr(model.objects, "for_tenant")
                else model._default_manager)
        count = rows.filter(**{relation.field.name: company}).count()
        if count:
            label = "co-managed users" if model is Membership else str(model._meta.verbose_name_plural)
            found[label] = found.get(label, 0) + count
    return found


def company_removal_blockers(*, company: ClientCompany) -> list[str]:
    """Why `company` cannot be deleted yet, as sentences (empty: it can)."""
    references = company_references(company=company)
    blockers = []
    co_managers = references.pop("co-managed users", 0)
    if co_managers:
        blockers.append(f"{counted(co_managers, 'co-managed user is', 'co-managed users are')} bound to it; "
                        "move them to other companies first.")
    if references:
        named = ", ".join(f"{count} {label}" for label, count in references.items())
        blockers.append(f"It has history ({named}) that is kept: deactivate the company instead.")
    return blockers


def company_co_managers(*, company: ClientCompany) -> tuple[int, int]:
    """(how many active co-managed users are bound to `company`, how many of them are bound to no
    other active company): who loses copilot scope when it is deactivated."""
    bound = Membership.objects.for_tenant(company.tenant).filter(companies=company, is_active=True)
    stranded = bound.exclude(companies__in=ClientCompany.objects.for_tenant(company.tenant).filter(
        is_active=True).exclude(pk=company.pk))
    return bound.count(), stranded.count()

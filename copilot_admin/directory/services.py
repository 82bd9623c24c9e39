"""Writes of the directory: client companies, memberships and invitations, accounts.

Each function takes the acting user or membership, checks first that it may act (the policy
function: `admin.companies`, `admin.users`; an account only by its owner), runs in one
transaction, records its change with that actor in the same transaction, and enqueues e-mails
and tasks only after commit.
"""

from django.contrib.auth.hashers import make_password
from django.contrib.auth.tokens import default_token_generator
from django.db import models, transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from knox.models import AuthToken

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm, PlatformPerm, all_permissions
from copilot_admin.access.policy import permission_require
from copilot_admin.access.services import ensure_can_grant
from copilot_admin.audit.services import (
    audit_change_record,
    audit_event_record,
    audit_event_record_for_user_tenants,
    audit_m2m_change_record,
    audit_snapshot,
)
from copilot_admin.core.errors import ApplicationError, Conflict, NotFound, PermissionRefused, refusing_duplicates
from copilot_admin.core.timezones import is_valid_zone
from copilot_admin.directory.selectors import company_removal_blockers, invitations_of_created_account
from tenants.models import ClientCompany, Membership, Tenant, User, UserSession, UserType
from tenants.selectors import memberships_of_user

# -- client companies -----------------------------------------------------------------

COMPANY_NAME_CONSTRAINT = "company_unique_name_per_tenant"


def _company_name_taken(name: str) -> ApplicationError:
    return ApplicationError(f"A company named {name!r} exists.", code="duplicate", fields={"name": ["taken"]})


@transaction.atomic
def company_create(*, actor: Membership, name: str, co_managed: bool = False, is_active: bool = True) -> ClientCompany:
    permission_require(actor=actor, permission=Perm.COMPANIES)
    if ClientCompany.objects.for_tenant(actor.tenant).filter(name__iexact=name).exists():
        raise _company_name_taken(name)
    with refusing_duplicates(constraint=COMPANY_NAME_CONSTRAINT, error=_company_name_taken(name)):
        company = ClientCompany.objects.for_tenant(actor.tenant).create(
            tenant=actor.tenant, name=name, co_managed=co_managed, is_active=is_active
        )
    audit_change_record(actor=actor, tenant=actor.tenant, instance=company)
    return company


@transaction.atomic
def company_update(*, actor: Membership, company: ClientCompany, **changes) -> ClientCompany:
    permission_require(actor=actor, permission=Perm.COMPANIES, tenant=company.tenant_id)
    company = ClientCompany.objects.for_tenant(actor.tenant).select_for_update().get(pk=company.pk)
    before = audit_snapshot(company)
    if "name" in changes and changes["name"] != company.name:
        if ClientCompany.objects.for_tenant(actor.tenant).filter(name__iexact=changes["name"]).exclude(pk=company.pk).exists():
            raise _company_name_taken(changes["name"])
        company.name = changes["name"]
    if "co_managed" in changes:
        company.co_managed = bool(changes["co_managed"])
    if "is_active" in changes:
        # Deactivating takes the company out of every member's copilot scope on the next call
        # (saving it bumps the tenant's access-cache version); its history stays.
        company.is_active = bool(changes["is_active"])
    with refusing_duplicates(constraint=COMPANY_NAME_CONSTRAINT, error=_company_name_taken(company.name)):
        company.save()
    audit_change_record(actor=actor, tenant=actor.tenant, instance=company, before=before)
    return company


@transaction.atomic
def company_delete(*, actor: Membership, company: ClientCompany) -> None:
    """Delete a client company that nothing refers to. A company co-managed users are bound to,
    or that usage records name, is refused (409 `company_in_use`, the sentences of
    `company_removal_blockers`): its history is kept, so it can be deactivated instead."""
    permission_require(actor=actor, permission=Perm.COMPANIES, tenant=company.tenant_id)
    company = ClientCompany.objects.for_tenant(actor.tenant).select_for_update().get(pk=company.pk)
    blockers = company_removal_blockers(company=company)
    if blockers:
        raise Conflict(" ".join(blockers), code="company_in_use")
    audit_change_record(actor=actor, tenant=actor.tenant, instance=company, deleted=True)
    company.delete()


# -- memberships (users of a tenant) ----------------------------------------------------

def _validate_assignment(
    *, actor: Membership, user_type: str, role: SecurityRole, companies, kept=()
) -> list[ClientCompany]:
    """The checked companies of an assignment. `kept`: companies the user is bound to already
    (a deactivated one may stay bound, it cannot be newly assigned)."""
    if role.tenant_id != actor.tenant_id:
        raise ApplicationError("Unknown role.", fields={"role": ["not found"]})
    if role.user_type != user_type:
        raise ApplicationError(
            f"The role {role.name!r} is for {role.get_user_type_display().lower()} users.",
            code="role_user_type_mismatch",
            fields={"role": ["user type mismatch"]},
        )
    if not role.is_active:
        raise ApplicationError("The role is deactivated.", code="role_inactive", fields={"role": ["inactive"]})
    ensure_can_grant(actor=actor, permissions=role.permission_set)
    companies = list(companies or [])
    if any(company.tenant_id != actor.tenant_id for company in companies):
        raise ApplicationError("Unknown company.", fields={"companies": ["not found"]})
    # Their state as stored now (a caller's copies may be stale: deactivated meanwhile).
    companies = list(ClientCompany.objects.for_tenant(actor.tenant).filter(pk__in={c.pk for c in companies}))
    if user_type == UserType.INTERNAL and companies:
        raise ApplicationError(
            "Only co-managed users are bound to client companies.", fields={"companies": ["internal user"]}
        )
    if user_type == UserType.CO_MANAGED:
        if not companies:
            raise ApplicationError(
                "A co-managed user co-manages at least one client company.", fields={"companies": ["required"]}
            )
        inactive = [c.name for c in companies if not c.is_active and c not in kept]
        if inactive:
            raise ApplicationError(
                f"Deactivated companies cannot be assigned: {', '.join(inactive)}.",
                code="company_inactive", fields={"companies": inactive},
            )
        not_enabled = [c.name for c in companies if not c.co_managed]
        if not_enabled:
            raise ApplicationError(
                f"Co-management is not enabled for: {', '.join(not_enabled)}.",
                code="company_not_co_managed",
                fields={"companies": not_enabled},
            )
    return companies


@transaction.atomic
def membership_create(
    *,
    actor: Membership | None,
    tenant: Tenant,
    email: str,
    user_type: str,
    role: SecurityRole,
    companies=(),
    full_name: str = "",
    password: str | None = None,
    send_invite: bool = True,
) -> Membership:
    """Invite an e-mail address to the tenant. The membership grants nothing until the
    account's owner accepts it (`membership_accept`; for an account this creates, by setting
    its password through the invitation link).

    The answer does not depend on whether the address already has an account, nor on what
    that account is: the same work is done and the same invitation e-mail enqueued on every
    path, an existing account's name and fields are never touched, and a platform operator's
    account gets an invitation that can never be accepted. `full_name` names only an account
    this creates. `actor` None only for server-side setup (benchmarks, commands), whose
    memberships are accepted at once.
    """
    if actor is not None:
        permission_require(actor=actor, permission=Perm.USERS, tenant=tenant)
        companies = _validate_assignment(actor=actor, user_type=user_type, role=role, companies=companies)
    return _membership_invite(
        actor=actor, tenant=tenant, email=email, user_type=user_type, role=role, companies=companies,
        full_name=full_name, password=password, send_invite=send_invite, accept_now=actor is None,
    )


def _membership_invite(
    *, actor, tenant: Tenant, email: str, user_type: str, role: SecurityRole, companies, full_name: str,
    password: str | None, send_invite: bool, accept_now: bool,
) -> Membership:
    """The invitation itself, once the caller checked its actor (`membership_create`,
    `tenant_admin_invite`)."""
    email = User.objects.normalize_email(email).lower()
    # One row written for a new address (no password hashing: the owner sets it), none for an
    # existing one; the inviting tenant's log reads the same either way: the account is
    # recorded below, in the platform log, on both paths.
    user, created = User.objects.get_or_create(
        email=email, defaults={"full_name": full_name, "password": make_password(password)}
    )
    if Membership.objects.for_tenant(tenant).filter(user=user).exists():
        raise ApplicationError(f"{email} is already a user of this tenant.", code="duplicate", fields={"email": ["taken"]})
    audit_event_record(
        tenant=None, actor=actor, action="user.invite", object_type="user", object_id=user.pk, object_repr=user.email,
        metadata={"tenant": tenant.slug, "account_created": created},
        changes={"full_name": [None, full_name], "email": [None, email]} if created else None,
    )
    membership = Membership.objects.for_tenant(tenant).create(
        tenant=tenant, user=user, user_type=user_type, role=role, created_account=created,
        accepted_at=timezone.now() if accept_now and not user.is_platform_operator else None,
    )
    membership.companies.set(companies)
    audit_change_record(actor=actor, tenant=tenant, instance=membership)
    audit_m2m_change_record(actor=actor, tenant=tenant, instance=membership, field="companies", before=[],
                            after=companies)
    if send_invite and membership.accepted_at is None:
        transaction.on_commit(lambda: _enqueue_invite(membership_id=membership.pk, tenant_id=tenant.pk))
    return membership


def tenant_admin_role(*, tenant: Tenant) -> SecurityRole:
    """The tenant's system role that holds every permission (seeded with the tenant)."""
    everything = all_permissions()
    for role in SecurityRole.objects.for_tenant(tenant).filter(is_system=True, user_type=UserType.INTERNAL):
        if role.permission_set >= everything:
            return role
    raise Conflict("This tenant has no Tenant Administrator role.", code="no_admin_role")


@transaction.atomic
def tenant_admin_invite(*, actor: User, tenant: Tenant, email: str) -> Membership:
    """A platform operator invites a tenant's administrator (its first one, when the tenant is
    created): a pending membership holding the tenant's Tenant Administrator role, e-mailed
    after commit. It grants nothing until its owner accepts, like every invitation."""
    permission_require(actor=actor, permission=PlatformPerm.OPERATOR, message="Only platform operators do this.")
    return _membership_invite(
        actor=actor, tenant=tenant, email=email, user_type=UserType.INTERNAL, role=tenant_admin_role(tenant=tenant),
        companies=[], full_name="", password=None, send_invite=True, accept_now=False,
    )


@transaction.atomic
def tenant_admin_invitation_resend(*, actor: User, membership: Membership) -> Membership:
    """A platform operator e-mails a pending administrator invitation again (a fresh link)."""
    permission_require(actor=actor, permission=PlatformPerm.OPERATOR, message="Only platform operators do this.")
    membership = Membership.objects.for_tenant(membership.tenant).select_for_update().get(pk=membership.pk)
    if membership.accepted_at is not None:
        raise Conflict("This user accepted the invitation already.", code="already_accepted")
    audit_event_record(
        tenant=membership.tenant, actor=actor, action="membership.invitation_resend", object_type="membership",
        object_id=membership.pk, object_repr=str(membership),
    )
    transaction.on_commit(lambda: _enqueue_invite(membership_id=membership.pk, tenant_id=membership.tenant_id))
    return membership


def _enqueue_invite(*, membership_id: int, tenant_id: int) -> None:
    from copilot_admin.directory.tasks import send_invitation

    send_invitation.delay(membership_id=membership_id, tenant_id=tenant_id)


def invitation_link_parts(*, user: User) -> tuple[str, str]:
    """The uid and token of the set-password link (Django's password-reset token: single use)."""
    return urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)


@transaction.atomic
def invitation_resend(*, actor: Membership, membership: Membership) -> Membership:
    """E-mail a pending invitation again (a fresh link). The same answer whatever the address
    is (an operator's gets nothing, as on the first sending)."""
    permission_require(actor=actor, permission=Perm.USERS, tenant=membership.tenant_id)
    membership = Membership.objects.for_tenant(actor.tenant).select_for_update().get(pk=membership.pk)
    if membership.accepted_at is not None:
        raise Conflict("This user accepted the invitation already.", code="already_accepted")
    ensure_can_grant(actor=actor, permissions=membership.role.permission_set)
    audit_event_record(
        tenant=actor.tenant, actor=actor, action="membership.invitation_resend", object_type="membership",
        object_id=membership.pk, object_repr=str(membership),
    )
    transaction.on_commit(lambda: _enqueue_invite(membership_id=membership.pk, tenant_id=membership.tenant_id))
    return membership


@transaction.atomic
def invitation_revoke(*, actor: Membership, membership: Membership) -> None:
    """Withdraw a pending invitation: the membership is removed, its links stop working (they
    name a membership that no longer exists). An account the invitation created stays, unused."""
    permission_require(actor=actor, permission=Perm.USERS, tenant=membership.tenant_id)
    membership = Membership.objects.for_tenant(actor.tenant).select_for_update().get(pk=membership.pk)
    if membership.accepted_at is not None:
        raise Conflict("This user accepted the invitation already; deactivate the user instead.",
                       code="already_accepted")
    ensure_can_grant(actor=actor, permissions=membership.role.permission_set)
    audit_change_record(actor=actor, tenant=actor.tenant, instance=membership, deleted=True)
    membership.delete()


@transaction.atomic
def membership_accept(*, user: User, membership: Membership) -> Membership:
    """The account's owner, signed in as themselves, accepts its pending invitation: from now
    on the membership grants access. Platform operators cannot be members of tenants."""
    membership = (
        Membership.objects.for_tenant(membership.tenant).select_for_update().select_related("tenant").get(pk=membership.pk)
    )
    if membership.user_id != user.pk or not user.is_authenticated or not user.is_active:
        raise NotFound("Not found.")
    if user.is_platform_operator:
        raise PermissionRefused("Platform operator accounts cannot be members of tenants.", code="operator_account")
    if membership.accepted_at is not None:
        raise Conflict("This invitation was accepted already.", code="already_accepted")
    before = audit_snapshot(membership)
    membership.accepted_at = timezone.now()
    membership.save(update_fields=["accepted_at"])
    audit_change_record(actor=user, tenant=membership.tenant, instance=membership, before=before)
    return membership


@transaction.atomic
def membership_accept_created_account(*, user: User) -> list[Membership]:
    """The owner of an account that an invitation created set its password through the
    invitation link: that invitation (only that one) is accepted."""
    if user.is_platform_operator:
        return []
    return [membership_accept(user=user, membership=m) for m in invitations_of_created_account(user=user)]


MEMBERSHIP_FIELDS = frozenset({"role", "companies", "is_active"})


@transaction.atomic
def membership_update(*, actor: Membership, membership: Membership, **changes) -> Membership:
    """Change role, co-managed companies or active flag: the membership only. User type is
    fixed, and the account's own fields (name, e-mail, password) belong to its owner
    (`account_update`). Deactivating refuses, in this tenant, every session and API token
    issued before it, also after a later re-activation."""
    unknown = sorted(set(changes) - MEMBERSHIP_FIELDS)
    if unknown:
        raise ApplicationError(
            "Only the role, companies and active flag of a membership can be changed here.",
            code="not_a_membership_field", fields={name: ["not editable"] for name in unknown},
        )
    permission_require(actor=actor, permission=Perm.USERS, tenant=membership.tenant_id)
    membership = Membership.objects.for_tenant(actor.tenant).select_for_update().get(pk=membership.pk)
    if membership.pk == actor.pk and ("role" in changes or changes.get("is_active") is False):
        raise Conflict("You cannot change your own role or deactivate yourself.", code="own_membership")
    # Whoever edits a user must be able to grant that user's current role too: no editing
    # of users who hold more than the actor.
    ensure_can_grant(actor=actor, permissions=membership.role.permission_set)
    before, companies_before = audit_snapshot(membership), list(membership.companies.all())
    role = changes.get("role", membership.role)
    companies = changes.get("companies", companies_before)
    companies = _validate_assignment(actor=actor, user_type=membership.user_type, role=role, companies=companies,
                                     kept=companies_before)
    membership.role = role
    deactivating = "is_active" in changes and membership.is_active and not changes["is_active"]
    if "is_active" in changes:
        membership.is_active = bool(changes["is_active"])
    if deactivating:
        membership.access_revoked_at = timezone.now()
    membership.save()
    audit_change_record(actor=actor, tenant=actor.tenant, instance=membership, before=before)
    if "companies" in changes:
        membership.companies.set(companies)
        audit_m2m_change_record(actor=actor, tenant=actor.tenant, instance=membership, field="companies",
                                before=companies_before, after=companies)
    if deactivating:
        user_id, tenant = membership.user_id, membership.tenant
        transaction.on_commit(lambda: user_end_sessions_if_memberless(user_id=user_id, tenant=tenant))
    return membership


def user_end_sessions_if_memberless(*, user_id: int, tenant: Tenant) -> int:
    """After a deactivation in `tenant`: a user left without any accepted, active membership
    (and not a platform operator) has no use for its sessions and API tokens; they end.
    A user still a member elsewhere keeps them (they no longer reach `tenant`: see
    `Membership.access_revoked_at`). Returns how many ended."""
    user = User.objects.filter(pk=user_id).first()
    if user is None or user.is_platform_operator or memberships_of_user(user=user).exists():
        return 0
    with transaction.atomic():
        sessions, _ = UserSession.objects.filter(user_id=user_id).delete()
        tokens, _ = AuthToken.objects.filter(user_id=user_id).delete()
        audit_event_record(
            tenant=tenant, actor=None, action="user.sessions_ended", object_type="user", object_id=user_id,
            object_repr=user.email, metadata={"sessions": sessions, "tokens": tokens, "reason": "membership_deactivated"},
        )
    return sessions + tokens


@transaction.atomic
def account_update(*, actor: User, user: User, full_name: str) -> User:
    """The account's owner changes its own name (nobody else does)."""
    if actor.pk != user.pk:
        raise PermissionRefused("Only the account's owner changes its name.")
    return _account_field_save(actor=actor, user=user, field="full_name", value=full_name)


def _account_field_save(*, actor: User, user: User, field: str, value) -> User:
    """Set one field of the account (locked), recorded when it changed."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if getattr(user, field) != value:
        before = audit_snapshot(user)
        setattr(user, field, value)
        user.save(update_fields=[field])
        # An account belongs to no tenant: its changes are in the platform log.
        audit_change_record(actor=actor, tenant=None, instance=user, before=before)
    return user


@transaction.atomic
def account_time_zone_update(*, actor: User, user: User, time_zone: str) -> User:
    """The account's owner picks the zone its pages show times in (blank: UTC). Only pages
    change: stored times, the API, exports and e-mails stay UTC. Unknown names are refused."""
    if actor.pk != user.pk:
        raise PermissionRefused("Only the account's owner changes its time zone.")
    time_zone = (time_zone or "").strip()
    if not is_valid_zone(time_zone):
        raise ApplicationError(
            f"Unknown time zone {time_zone[:64]!r}: pick one from the list.", code="invalid_time_zone",
            fields={"time_zone": ["Unknown time zone."]},
        )
    return _account_field_save(actor=actor, user=user, field="time_zone", value=time_zone)


def account_password_changed(*, user: User, request=None) -> None:
    """After the owner changed its password (the form checked the current one): its API
    tokens end (the session that changed it stays; Django ends the others), and the change
    is a security event in the tenants the account belongs to."""
    with transaction.atomic():
        tokens, _ = AuthToken.objects.filter(user=user).delete()
        audit_event_record_for_user_tenants(
            user=user, actor=user, action="auth.password_change", object_type="user", object_id=user.pk,
            object_repr=user.email, request=request, metadata={"tokens_ended": tokens},
        )


# -- bulk actions on users ----------------------------------------------------------------

BULK_LIMIT = 200


class BulkAction(models.TextChoices):
    DEACTIVATE = "deactivate", "Deactivate"
    ROLE = "role", "Change role"
    RESEND = "resend", "Re-send invitation"
    REVOKE = "revoke", "Revoke invitation"


def _bulk_apply_one(*, actor: Membership, membership: Membership, action: str, role: SecurityRole | None) -> None:
    if action == BulkAction.DEACTIVATE:
        if not membership.is_accepted:
            raise Conflict("Not accepted yet; revoke the invitation instead.")
        if not membership.is_active:
            raise Conflict("Inactive already.")
        membership_update(actor=actor, membership=membership, is_active=False)
    elif action == BulkAction.ROLE:
        membership_update(actor=actor, membership=membership, role=role)
    elif action == BulkAction.RESEND:
        invitation_resend(actor=actor, membership=membership)
    else:
        invitation_revoke(actor=actor, membership=membership)


@transaction.atomic
def membership_bulk_apply(
    *, actor: Membership, membership_ids, action: str, role: SecurityRole | None = None
) -> list[Membership]:
    """Apply one action to many users of the actor's tenant, all or nothing.

    `action` is a `BulkAction`: deactivate, change role (to `role`), re-send or revoke pending
    invitations. At most `BULK_LIMIT` users. An id that is not a user of the actor's tenant
    (foreign or missing) is `NotFound` for the whole call. Every user is put through the same
    service as one at a time (`membership_update`, `invitation_resend`, `invitation_revoke`), so
    each is checked against the actor's permissions (no editing of users who hold more than the
    actor, no granting of a role it could not grant, the role's user type and so the co-managed
    ceiling, not its own membership) and audited on its own. Every user is tried; when any is
    refused, nothing is changed (one transaction), no e-mail is sent, and one `Conflict`
    (`bulk_refused`) names each refused user and why. Returns the memberships acted on."""
    permission_require(actor=actor, permission=Perm.USERS)
    if action not in BulkAction.values:
        raise ApplicationError("Unknown bulk action.", code="validation_error", fields={"action": ["unknown"]})
    ids = list(dict.fromkeys(membership_ids))
    if not ids:
        raise ApplicationError("Select at least one user.", code="validation_error", fields={"ids": ["required"]})
    if len(ids) > BULK_LIMIT:
        raise ApplicationError(
            f"At most {BULK_LIMIT} users can be changed at once; {len(ids)} were selected.",
            code="too_many", fields={"ids": [f"at most {BULK_LIMIT}"]},
        )
    if action == BulkAction.ROLE and (role is None or role.tenant_id != actor.tenant_id):
        raise ApplicationError("Choose the new role.", code="validation_error", fields={"role": ["required"]})
    memberships = list(
        Membership.objects.for_tenant(actor.tenant).select_related("user", "role").filter(pk__in=ids).order_by("pk")
    )
    if len(memberships) != len(ids):
        raise NotFound("Not found.")
    refused: dict[str, str] = {}
    for membership in memberships:
        try:
            _bulk_apply_one(actor=actor, membership=membership, action=action, role=role)
        except NotFound:
            raise
        except ApplicationError as error:
            refused[membership.user.email] = error.message
    if refused:
        reasons = "; ".join(f"{email}: {reason}" for email, reason in refused.items())
        raise Conflict(
            f"Nothing was changed: {len(refused)} of the {len(memberships)} selected users cannot be changed "
            f"this way ({reasons}).",
            code="bulk_refused", fields={email: [reason] for email, reason in refused.items()},
        )
    audit_event_record(
        tenant=actor.tenant, actor=actor, action=f"membership.bulk_{action}", object_type="membership",
        object_id="*", object_repr=f"{len(memberships)} users",
        metadata={"bulk": True, "count": len(memberships), "ids": [m.pk for m in memberships],
                  **({"role": role.name} if role is not None and action == BulkAction.ROLE else {})},
    )
    return memberships

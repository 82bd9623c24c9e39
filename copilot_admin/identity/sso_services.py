"""Writes of single sign-on: a tenant's configuration and domain claims, the operator's decision
on a claim, and the portal's side of a sign-in (which account an ID token signs in).

Rules each write keeps:
- the configuration is changed by a member holding `admin.identity`, the decision on a domain
  by a platform operator; every change is recorded in the tenant's audit log in its transaction;
- a domain is claimed by one tenant at most (a pending or approved claim is unique: a second
  claim is refused `domain_taken`, also under concurrent writes), and it takes effect only once
  approved;
- the client secret is only ever named (`OIDC_CLIENT_SECRET_...`), never stored;
- `enforced` needs `enabled`; the break-glass account is one active member of the tenant who
  manages identity (`admin.identity`) and keeps password login while SSO is enforced;
- a sign-in succeeds only for an active, existing member of the tenant that owns the verified
  e-mail's approved domain; with `jit_enabled`, an unknown address gets a pending (inactive)
  membership with the tenant's lowest internal role and is still refused until an administrator
  activates it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import ADMIN_PERMISSIONS, Perm, PlatformPerm
from copilot_admin.access.policy import permission_require, permissions_of
from copilot_admin.audit.models import ActorType, Outcome
from copilot_admin.audit.services import audit_change_record, audit_event_record, audit_snapshot
from copilot_admin.core.errors import ApplicationError, NotFound, refusing_duplicates
from copilot_admin.core.secrets import OIDC_CLIENT_SECRET_ENV_PREFIX, oidc_client_secret_env_allowed
from copilot_admin.identity.mfa import mfa_has_factor
from copilot_admin.identity.models import SSO_DOMAIN_LIVE_CONSTRAINT, SsoConfiguration, SsoDomain, SsoDomainStatus
from copilot_admin.identity.sso_selectors import sso_configuration_for_email
from tenants.models import Membership, User, UserType

MAX_DOMAINS = 20
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


class SsoRefused(ApplicationError):
    """A sign-in the portal refuses; `reason` is recorded, the message shown."""

    status_code = 403
    code = "sso_refused"

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _field_error(field: str, message: str, code: str = "invalid") -> ApplicationError:
    return ApplicationError(message, code=code, fields={field: [message]})


def _clean_issuer(issuer: str) -> str:
    issuer = (issuer or "").strip()
    if not issuer:
        return ""
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or not parts.hostname:
        raise _field_error("issuer", "Enter the issuer URL (no query or fragment).")
    if parts.scheme == "https":
        return issuer
    loopback = parts.hostname == "localhost"
    try:
        loopback = loopback or ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        pass
    if parts.scheme == "http" and loopback and not settings.PRODUCTION:
        return issuer  # a provider on this machine (development and tests)
    raise _field_error("issuer", "The issuer must be an https:// URL.")


def _clean_domains(domains) -> list[str]:
    if isinstance(domains, str):
        domains = re.split(r"[\s,]+", domains)
    cleaned = sorted({str(d).strip().lower().lstrip("@") for d in domains or [] if str(d).strip()})
    bad = [d for d in cleaned if not _DOMAIN.fullmatch(d)]
    if bad:
        raise _field_error("email_domains", f"Not a domain name: {', '.join(bad)}.")
    if len(cleaned) > MAX_DOMAINS:
        raise _field_error("email_domains", f"At most {MAX_DOMAINS} domains.")
    return cleaned


def _domain_taken(domain: str) -> ApplicationError:
    return ApplicationError(
        f"The domain {domain} is claimed by another organization.",
        code="domain_taken",
        fields={"email_domains": [f"{domain} is claimed by another organization."]},
    )


def _break_glass_membership(*, tenant, email: str) -> Membership | None:
    email = (email or "").strip().lower()
    if not email:
        return None
    membership = Membership.objects.for_tenant(tenant).select_related("user", "role").filter(user__email=email).first()
    if membership is None or Perm.IDENTITY not in permissions_of(membership):
        raise _field_error(
            "break_glass_email",
            "The break-glass account must be an active administrator of this organization who manages identity.",
        )
    if not mfa_has_factor(user=membership.user):
        raise _field_error("break_glass_email", "The break-glass account must have a second factor (MFA) set up first.")
    return membership


@transaction.atomic
def sso_configuration_update(
    *,
    actor: Membership,
    enabled=None,
    issuer=None,
    client_id=None,
    client_secret_env=None,
    email_domains=None,
    enforced=None,
    jit_enabled=None,
    break_glass_email=None,
) -> SsoConfiguration:
    """Create or change the tenant's single sign-on (None: leave a field as it is); new domains
    are claimed pending the operator's approval, removed ones are released."""
    permission_require(actor=actor, permission=Perm.IDENTITY)
    tenant = actor.tenant
    config = SsoConfiguration.objects.for_tenant(tenant).select_for_update().first()
    created = config is None
    if created:
        config = SsoConfiguration(tenant=tenant)
    before = None if created else audit_snapshot(config)
    if issuer is not None:
        config.issuer = _clean_issuer(issuer)
    if client_id is not None:
        config.client_id = client_id.strip()
    if client_secret_env is not None:
        name = client_secret_env.strip()
        if name and not oidc_client_secret_env_allowed(name):
            raise _field_error(
                "client_secret_env",
                f"The variable's name must start with {OIDC_CLIENT_SECRET_ENV_PREFIX} (then A-Z, 0-9, _).",
            )
        config.client_secret_env = name
    for field, value in (("enabled", enabled), ("enforced", enforced), ("jit_enabled", jit_enabled)):
        if value is not None:
            setattr(config, field, bool(value))
    if break_glass_email is not None:
        config.break_glass = _break_glass_membership(tenant=tenant, email=break_glass_email)
    if config.enabled and not (config.issuer and config.client_id and config.client_secret_env):
        raise ApplicationError(
            "Single sign-on needs the issuer, the client id and the client secret's variable.",
            code="incomplete",
            fields={"enabled": ["Fill in the issuer, client id and secret."]},
        )
    if config.enforced and not config.enabled:
        raise _field_error("enforced", "Single sign-on can only be enforced while it is enabled.")
    config.updated_at = timezone.now()
    config.save()
    audit_change_record(actor=actor, tenant=tenant, instance=config, before=before)
    if email_domains is not None:
        _domains_replace(actor=actor, tenant=tenant, domains=_clean_domains(email_domains))
    return config


def _domains_replace(*, actor: Membership, tenant, domains: list[str]) -> None:
    current = {claim.domain: claim for claim in SsoDomain.objects.for_tenant(tenant).select_for_update()}
    for domain, claim in current.items():
        if domain not in domains:
            audit_change_record(actor=actor, tenant=tenant, instance=claim, deleted=True)
            claim.delete()
    for domain in domains:
        claim = current.get(domain)
        if claim is not None and claim.status != SsoDomainStatus.REJECTED:
            continue
        # Another tenant's live claim: refused here, and by the database under concurrent writes.
        if (
            SsoDomain.objects.unscoped()
            .filter(domain=domain, status__in=[SsoDomainStatus.PENDING, SsoDomainStatus.APPROVED])
            .exclude(tenant=tenant)
            .exists()
        ):
            raise _domain_taken(domain)
        with refusing_duplicates(constraint=SSO_DOMAIN_LIVE_CONSTRAINT, error=_domain_taken(domain)):
            if claim is None:
                claim = SsoDomain.objects.for_tenant(tenant).create(tenant=tenant, domain=domain)
                audit_change_record(actor=actor, tenant=tenant, instance=claim)
            else:  # a rejected claim, asked for again
                before = audit_snapshot(claim)
                claim.status, claim.decided_at, claim.decided_by = SsoDomainStatus.PENDING, None, None
                claim.save()
                audit_change_record(actor=actor, tenant=tenant, instance=claim, before=before)


@transaction.atomic
def sso_domain_decide(*, actor: User, domain_id: int, approve: bool) -> SsoDomain:
    """A platform operator approves (or rejects, or revokes) a tenant's claim on a domain."""
    permission_require(
        actor=actor, permission=PlatformPerm.OPERATOR, message="Only platform operators approve single sign-on domains."
    )
    # unscoped(): the operator decides any tenant's claim; the entry goes to that tenant's log.
    claim = SsoDomain.objects.unscoped().select_for_update().select_related("tenant").filter(pk=domain_id).first()
    if claim is None:
        raise NotFound("Not found.")
    before = audit_snapshot(claim)
    claim.status = SsoDomainStatus.APPROVED if approve else SsoDomainStatus.REJECTED
    claim.decided_at, claim.decided_by = timezone.now(), actor
    with refusing_duplicates(constraint=SSO_DOMAIN_LIVE_CONSTRAINT, error=_domain_taken(claim.domain)):
        claim.save()
    audit_change_record(actor=actor, tenant=claim.tenant, instance=claim, before=before)
    return claim


def sso_client_secret(config: SsoConfiguration) -> str:
    """The client secret, read from the environment at use (never stored); refused when unset."""
    name = config.client_secret_env
    secret = os.environ.get(name, "") if oidc_client_secret_env_allowed(name) else ""
    if not secret:
        raise SsoRefused("secret_missing", "Single sign-on is not available right now; ask your administrator.")
    return secret


def sso_refusal_record(*, config: SsoConfiguration, reason: str, email: str = "", request=None) -> None:
    """Record a refused sign-in in the tenant's audit log (its own transaction: it must stay)."""
    with transaction.atomic():
        audit_event_record(
            tenant=config.tenant,
            actor=None,
            actor_type=ActorType.ANONYMOUS,
            action="sso.login",
            outcome=Outcome.DENIED,
            object_type="sso",
            object_repr=email or "single sign-on",
            metadata={"reason": reason},
            request=request,
        )


def _lowest_internal_role(tenant) -> SecurityRole | None:
    roles = SecurityRole.objects.for_tenant(tenant).filter(is_active=True, user_type=UserType.INTERNAL)
    # Lowest: the fewest admin, usage and audit permissions first, then the fewest permissions at all.
    return min(
        roles,
        key=lambda role: (len(ADMIN_PERMISSIONS.intersection(role.permissions)), len(role.permissions), role.name),
        default=None,
    )


def _jit_pending_membership(*, config: SsoConfiguration, email: str, user: User | None, request) -> None:
    tenant = config.tenant
    role = _lowest_internal_role(tenant)
    if role is None:
        raise SsoRefused("no_role", "Your organization has no role for new members; ask your administrator.")
    with transaction.atomic():
        created_account = user is None
        if created_account:
            user = User.objects.create_user(email)
            audit_change_record(actor=None, tenant=tenant, instance=user)
        membership = Membership.objects.for_tenant(tenant).create(
            tenant=tenant,
            user=user,
            role=role,
            user_type=UserType.INTERNAL,
            is_active=False,
            accepted_at=timezone.now(),
            created_account=created_account,
        )
        audit_change_record(actor=None, tenant=tenant, instance=membership, action="membership.sso_jit_create")


def sso_login_resolve(*, config: SsoConfiguration, email: str, request=None) -> User:
    """The account a verified e-mail signs in to `config`'s tenant, recorded (`sso.login`);
    `SsoRefused` (recorded too) when the address is not the tenant's to sign in."""
    tenant = config.tenant
    try:
        if sso_configuration_for_email(email) != config:
            # The provider vouched for an address outside this tenant's approved domains.
            raise SsoRefused("domain_mismatch", "This e-mail address does not belong to this organization's sign-in.")
        user = User.objects.filter(email=email).first()
        membership = Membership.objects.for_tenant(tenant).filter(user=user).first() if user else None
        if membership is None:
            if not config.jit_enabled:
                raise SsoRefused(
                    "unknown_user",
                    "There is no account for this e-mail address here; ask your administrator to invite you.",
                )
            _jit_pending_membership(config=config, email=email, user=user, request=request)
            raise SsoRefused(
                "pending_approval",
                "Your account was requested; an administrator must approve it before you can sign in.",
            )
        if not user.is_active or not membership.is_active:
            raise SsoRefused("inactive", "Your account is not active here; ask your administrator.")
    except SsoRefused as refusal:
        sso_refusal_record(config=config, reason=refusal.reason, email=email, request=request)
        raise
    with transaction.atomic():
        audit_event_record(
            tenant=tenant,
            actor=user,
            action="sso.login",
            object_type="sso",
            object_repr=email,
            metadata={"issuer": config.issuer},
            request=request,
        )
    return user


def sso_password_login_check(*, email: str, request=None) -> None:
    """Registered with core.login_policy: password login for an enforced domain answers 403
    `sso_required`, except for the tenant's named break-glass administrator (recorded)."""
    config = sso_configuration_for_email(email)
    if config is None or not config.enforced:
        return
    glass = config.break_glass
    # The break-glass password login needs the account's second factor too (MFA's login step and
    # the token API's `otp`): without an enrolled factor it is refused like everyone else's.
    if glass is not None and glass.is_active and glass.user.email == email and mfa_has_factor(user=glass.user):
        with transaction.atomic():
            audit_event_record(
                tenant=config.tenant,
                actor=None,
                actor_type=ActorType.ANONYMOUS,
                action="sso.break_glass_attempt",
                object_type="sso",
                object_repr=email,
                request=request,
                metadata={"note": "password login while single sign-on is enforced (break-glass account)"},
            )
        return
    raise ApplicationError(
        'Your organization signs in with single sign-on: use "Sign in with Microsoft".',
        code="sso_required",
        status_code=403,
    )

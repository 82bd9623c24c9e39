"""Reads of single sign-on: a tenant's configuration and domains, and which configuration (if
any) signs in an e-mail address."""

from __future__ import annotations

from django.db.models import QuerySet

from copilot_admin.identity.models import SsoConfiguration, SsoDomain, SsoDomainStatus
from tenants.models import Tenant


def sso_configuration_of(*, tenant: Tenant) -> SsoConfiguration | None:
    return SsoConfiguration.objects.for_tenant(tenant).select_related("break_glass__user").first()


def sso_domains_of(*, tenant: Tenant) -> QuerySet[SsoDomain]:
    return SsoDomain.objects.for_tenant(tenant).order_by("domain")


def email_domain(email: str) -> str:
    return (email or "").strip().lower().rpartition("@")[2]


def sso_configuration_for_email(email: str) -> SsoConfiguration | None:
    """The enabled configuration whose tenant owns the e-mail's domain with an operator's
    approval; None when the domain has no single sign-on (or it is not usable yet)."""
    domain = email_domain(email)
    if not domain:
        return None
    # unscoped(): a login names no tenant yet; an approved domain belongs to exactly one tenant
    # (the sso_domain_unique_live_claim constraint), and that tenant is the answer.
    claim = (
        SsoDomain.objects.unscoped()
        .filter(domain=domain, status=SsoDomainStatus.APPROVED)
        .select_related("tenant")
        .first()
    )
    if claim is None:
        return None
    config = SsoConfiguration.objects.for_tenant(claim.tenant).select_related("tenant", "break_glass__user").first()
    if config is None or not config.enabled or not config.issuer or not config.client_id:
        return None
    return config


def sso_domain_claims(*, status: str | None = SsoDomainStatus.PENDING) -> QuerySet[SsoDomain]:
    """Every tenant's domain claims (the operator console), pending first by default."""
    # unscoped(): the platform operator decides claims across tenants.
    claims = SsoDomain.objects.unscoped().select_related("tenant", "decided_by").order_by("status", "domain")
    return claims.filter(status=status) if status else claims


def sso_configuration_summary(*, tenant: Tenant) -> dict:
    """The tenant's single sign-on as the page and the API show it (defaults when not set up)."""
    config = sso_configuration_of(tenant=tenant)
    domains = list(sso_domains_of(tenant=tenant))
    return {
        "enabled": bool(config and config.enabled),
        "issuer": config.issuer if config else "",
        "client_id": config.client_id if config else "",
        "client_secret_env": config.client_secret_env if config else "",
        "email_domains": [claim.domain for claim in domains],
        "domains": domains,
        "enforced": bool(config and config.enforced),
        "jit_enabled": bool(config and config.jit_enabled),
        "break_glass_email": config.break_glass.user.email if config and config.break_glass else "",
    }

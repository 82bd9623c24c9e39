"""The policy table: every URL route of the project and the permission it requires.

A route that exists but is missing here fails tests/cross/test_permission_matrix.py, so a new
route cannot ship without a declared, tested policy.
"""

from django.conf import settings
from django.urls import URLResolver, get_resolver

from copilot_admin.access.permissions import ANY_MEMBER, Perm, feature_grants
from copilot_admin.access.policy import has_permission

PUBLIC = "public"
AUTHENTICATED = "authenticated"
OPERATOR = "operator"
# The simulator: its completion endpoint checks an api-key like Azure; its control endpoints
# (request log, behaviours) need COPILOT_SIMULATOR_TOKEN (tests/copilot/test_simulator_access.py).
SIMULATOR_TOKEN = "simulator token"

# Routes outside any tenant: name -> who may use them.
GLOBAL_ROUTES = {
    "home": AUTHENTICATED,
    "login": PUBLIC,
    "sso_login_start": PUBLIC,
    "sso_login_callback": PUBLIC,
    "logout": PUBLIC,
    "password_reset_confirm": PUBLIC,
    "profile": AUTHENTICATED,
    "invitation_accept": AUTHENTICATED,
    "schema": PUBLIC,
    "api-docs": PUBLIC,
    "api:auth-token": PUBLIC,
    # MFA (copilot_admin/identity/mfa_urls.py): the second step of a login is reachable only with a
    # pending login in the session (else back to the login); the rest are the user's own factors.
    "mfa:login_verify": PUBLIC,
    "mfa:login_key_options": PUBLIC,
    "mfa:login_key_verify": PUBLIC,
    "mfa:manage": AUTHENTICATED,
    "mfa:reauth": AUTHENTICATED,
    "mfa:totp_enrol": AUTHENTICATED,
    "mfa:key_options": AUTHENTICATED,
    "mfa:key_register": AUTHENTICATED,
    "mfa:remove": AUTHENTICATED,
    "mfa:recovery_codes": AUTHENTICATED,
    "platform:tenants": OPERATOR,
    "platform:tenant_create": OPERATOR,
    "platform:tenant_edit": OPERATOR,
    "platform:tenant_suspend": OPERATOR,
    "platform:tenant_overview": OPERATOR,
    "platform:tenant_admin_invite": OPERATOR,
    "platform:tenant_invitation_resend": OPERATOR,
    "api:platform-tenants-list": OPERATOR,
    "api:platform-tenants-detail": OPERATOR,
    # Platform operators and platform auditors (tests/audit/test_platform_auditor.py).
    "platform_audit:list": OPERATOR,
    "platform_audit:export": OPERATOR,
    "platform:deployments": OPERATOR,
    "platform:deployment_create": OPERATOR,
    "platform:deployment_edit": OPERATOR,
    "platform:deployment_deactivate": OPERATOR,
    "api:platform-deployments-list": OPERATOR,
    "api:platform-deployments-detail": OPERATOR,
    "platform:limits": OPERATOR,
    "platform:abuse_cases": OPERATOR,
    "platform:abuse_case_reinstate": OPERATOR,
    "api:platform-limits": OPERATOR,
    "api:platform-abuse-cases-list": OPERATOR,
    "api:platform-abuse-cases-reinstate": OPERATOR,
    "platform:sso_domains": OPERATOR,
    "platform:sso_domain_decide": OPERATOR,
    "api:platform-sso-domains-list": OPERATOR,
    "api:platform-sso-domains-approve": OPERATOR,
    "api:platform-sso-domains-reject": OPERATOR,
}
if settings.COPILOT_SIMULATOR:
    # Development only, mounted when COPILOT_SIMULATOR is set (never by DEBUG alone): the
    # built-in Azure OpenAI simulator behind the demo deployments.
    GLOBAL_ROUTES["copilot-simulator"] = SIMULATOR_TOKEN

# A route readers may GET as well (auditors read the directory): (the permission, the reader's).
def read_too(permission):
    return (permission, Perm.DIRECTORY_VIEW)


def holds(member, permission) -> bool:
    """True when `member` holds the tabled permission (a tuple: any one of them)."""
    return any(has_permission(member, one) for one in (permission if isinstance(permission, tuple) else (permission,)))


# Tenant pages (GET): name -> permission (a tuple: any one of them).
TENANT_PAGES = {
    "directory:overview": ANY_MEMBER,
    "directory:users": read_too(Perm.USERS),
    "directory:user_create": Perm.USERS,
    "directory:user_edit": read_too(Perm.USERS),
    "directory:user_deactivate": Perm.USERS,
    "directory:user_revoke": Perm.USERS,
    # Bulk actions on the ticked users: each a confirmation page (GET) that acts on POST.
    "directory:users_bulk_deactivate": Perm.USERS,
    "directory:users_bulk_role": Perm.USERS,
    "directory:users_bulk_resend": Perm.USERS,
    "directory:users_bulk_revoke": Perm.USERS,
    "directory:companies": ANY_MEMBER,
    "directory:company_create": Perm.COMPANIES,
    "directory:company_edit": read_too(Perm.COMPANIES),
    "directory:company_deactivate": Perm.COMPANIES,
    "directory:company_reactivate": Perm.COMPANIES,
    "directory:company_delete": Perm.COMPANIES,
    "copilot:settings": Perm.COPILOT_SETTINGS,
    "directory:login_security": Perm.USERS,
    "access:roles": read_too(Perm.ROLES),
    "access:role_matrix": read_too(Perm.ROLES),
    "access:role_create": Perm.ROLES,
    "access:role_edit": read_too(Perm.ROLES),
    "access:role_deactivate": Perm.ROLES,
    "access:role_delete": Perm.ROLES,
    "audit:list": Perm.AUDIT_VIEW,
    "audit:entry": Perm.AUDIT_VIEW,
    "compliance:checkpoints": Perm.AUDIT_VIEW,
    "compliance:access_review": Perm.AUDIT_VIEW,
    "compliance:data_exchange": Perm.AUDIT_VIEW,
    "compliance:reviews": Perm.AUDIT_VIEW,
    "compliance:review": Perm.AUDIT_VIEW,
    "regions:zone": Perm.REGION,
    "copilot:playground": ANY_MEMBER,
    "usage:dashboard": Perm.USAGE_VIEW,
    "usage:limits": Perm.LIMITS,
    "usage:abuse_cases": Perm.USAGE_VIEW,
    "usage:abuse_case": Perm.USAGE_VIEW,
    "usage:abuse_case_resolve": Perm.LIMITS,
    "usage:notifications": Perm.USAGE_VIEW,
    "usage:webhooks": Perm.LIMITS,
    "usage:webhook_create": Perm.LIMITS,
    "usage:webhook_edit": Perm.LIMITS,
    "usage:webhook_test": Perm.LIMITS,
    "usage:webhook_delete": Perm.LIMITS,
    "usage:webhook_deliveries": Perm.LIMITS,
    "identity:sso": Perm.IDENTITY,
    "identity:integration_keys": Perm.INTEGRATIONS,
}

# Tenant API: (name, method) -> permission.
TENANT_API = {
    ("api:users-list", "get"): read_too(Perm.USERS),
    ("api:users-list", "post"): Perm.USERS,
    ("api:users-detail", "get"): read_too(Perm.USERS),
    ("api:users-detail", "patch"): Perm.USERS,
    ("api:roles-list", "get"): read_too(Perm.ROLES),
    ("api:roles-list", "post"): Perm.ROLES,
    ("api:roles-detail", "get"): read_too(Perm.ROLES),
    ("api:roles-detail", "patch"): Perm.ROLES,
    ("api:roles-detail", "delete"): Perm.ROLES,
    ("api:companies-list", "get"): ANY_MEMBER,
    ("api:companies-list", "post"): Perm.COMPANIES,
    ("api:companies-detail", "get"): ANY_MEMBER,
    ("api:companies-detail", "patch"): Perm.COMPANIES,
    ("api:companies-detail", "delete"): Perm.COMPANIES,
    ("api:settings", "get"): ANY_MEMBER,
    ("api:settings", "patch"): Perm.COPILOT_SETTINGS,
    ("api:audit-list", "get"): Perm.AUDIT_VIEW,
    ("api:audit-detail", "get"): Perm.AUDIT_VIEW,
    ("api:audit-export", "get"): Perm.AUDIT_EXPORT,
    ("api:audit-checkpoints", "get"): Perm.AUDIT_VIEW,
    ("api:access-review", "get"): Perm.AUDIT_VIEW,
    ("api:data-exchange", "get"): Perm.AUDIT_VIEW,
    ("api:access-reviews-list", "get"): Perm.AUDIT_VIEW,
    ("api:access-reviews-list", "post"): Perm.AUDIT_VIEW,
    ("api:access-reviews-detail", "get"): Perm.AUDIT_VIEW,
    ("api:access-reviews-decide", "post"): Perm.USERS,
    ("api:access-reviews-complete", "post"): Perm.AUDIT_VIEW,
    ("api:access-reviews-export", "get"): Perm.AUDIT_EXPORT,
    # One route per declared copilot feature, requiring the feature's grant (copilot/features.py).
    **{(f"api:copilot-{grant.feature}", "post"): grant.code for grant in feature_grants()},
    # Reads of limits and abuse cases also allow admin.limits (the views' `alternatives`).
    ("api:limits", "get"): Perm.USAGE_VIEW,
    ("api:limits", "patch"): Perm.LIMITS,
    ("api:usage", "get"): Perm.USAGE_VIEW,
    ("api:usage-export", "get"): Perm.USAGE_VIEW,
    ("api:abuse-cases-list", "get"): Perm.USAGE_VIEW,
    ("api:abuse-cases-detail", "get"): Perm.USAGE_VIEW,
    ("api:abuse-cases-reinstate", "post"): Perm.LIMITS,
    ("api:abuse-cases-terminate", "post"): Perm.LIMITS,
    ("api:abuse-cases-dismiss", "post"): Perm.LIMITS,
    ("api:webhooks-list", "get"): Perm.LIMITS,
    ("api:webhooks-list", "post"): Perm.LIMITS,
    ("api:webhooks-detail", "get"): Perm.LIMITS,
    ("api:webhooks-detail", "patch"): Perm.LIMITS,
    ("api:webhooks-detail", "delete"): Perm.LIMITS,
    ("api:webhooks-test", "post"): Perm.LIMITS,
    ("api:webhooks-deliveries", "get"): Perm.LIMITS,
    ("api:sso", "get"): Perm.IDENTITY,
    ("api:sso", "patch"): Perm.IDENTITY,
    ("api:integration-keys-list", "get"): Perm.INTEGRATIONS,
    ("api:integration-keys-list", "post"): Perm.INTEGRATIONS,
    ("api:integration-keys-detail", "get"): Perm.INTEGRATIONS,
    ("api:integration-keys-detail", "delete"): Perm.INTEGRATIONS,
}

# Tenant pages that send a platform operator (never a member) to the tenant's console page
# instead of answering 404 (access/base_views.py `operator_console_page`).
OPERATOR_REDIRECTS = {"directory:overview": "platform:tenant_overview"}

# Which object of the tenant a route's <pk> names.
OBJECT_KIND = {
    "directory:user_edit": "membership",
    "directory:user_deactivate": "membership",
    "directory:user_revoke": "pending_membership",
    "directory:company_edit": "company",
    "directory:company_deactivate": "company",
    "directory:company_reactivate": "inactive_company",
    "directory:company_delete": "company",
    "access:role_edit": "role",
    "access:role_deactivate": "role",
    "access:role_delete": "role",
    "api:users-detail": "membership",
    "api:companies-detail": "company",
    "api:roles-detail": "role",
    "usage:abuse_case": "abuse_case",
    "usage:abuse_case_resolve": "abuse_case",
    "api:abuse-cases-detail": "abuse_case",
    "api:abuse-cases-reinstate": "abuse_case",
    "api:abuse-cases-terminate": "abuse_case",
    "api:abuse-cases-dismiss": "abuse_case",
    "usage:webhook_edit": "webhook",
    "usage:webhook_test": "webhook",
    "usage:webhook_delete": "webhook",
    "usage:webhook_deliveries": "webhook",
    "api:webhooks-detail": "webhook",
    "api:webhooks-test": "webhook",
    "api:webhooks-deliveries": "webhook",
    "audit:entry": "audit_entry",
    "api:audit-detail": "audit_entry",
    "compliance:review": "access_review",
    "api:access-reviews-detail": "access_review",
    "api:access-reviews-decide": "access_review",
    "api:access-reviews-complete": "access_review",
    "api:access-reviews-export": "access_review",
    "api:integration-keys-detail": "integration_key",
}


def object_pk(kind: str, world) -> int:
    """The pk of an object of `kind` in `world`'s tenant for the kinds that the matrix and
    isolation suites do not build themselves (made on first use)."""
    if kind == "abuse_case":
        from datetime import timedelta

        from django.utils import timezone

        from copilot_admin.usage.models import AbuseCase, CaseKind

        tenant = world.tenant
        cases = AbuseCase.objects.for_tenant(tenant)
        case = cases.filter(dedupe_key="policy-table").first() or cases.create(
            tenant=tenant, membership=world.members["tech"], kind=CaseKind.SUSPENSION, dedupe_key="policy-table",
            summary="3 strikes within 60 minutes", suspended_until=timezone.now() + timedelta(hours=1),
        )
        return case.pk
    if kind == "webhook":
        from copilot_admin.usage import webhooks
        from copilot_admin.usage.models import Webhook, WebhookEvent

        tenant = world.tenant
        hooks = Webhook.objects.for_tenant(tenant)
        hook = hooks.filter(url="https://127.0.0.1/policy-table").first() or hooks.create(
            tenant=tenant, url="https://127.0.0.1/policy-table", events=[WebhookEvent.CASE_OPENED],
            secret_ciphertext=webhooks.secret_encrypt("policy-table-secret-0123456789"),
        )
        return hook.pk
    if kind == "inactive_company":
        from tenants.models import ClientCompany

        companies = ClientCompany.objects.for_tenant(world.tenant)
        company = companies.filter(name="Policy Table (deactivated)").first() or companies.create(
            tenant=world.tenant, name="Policy Table (deactivated)", is_active=False)
        return company.pk
    if kind == "pending_membership":
        from tenants.models import Membership
        from tests.factories import add_member

        pending = Membership.objects.for_tenant(world.tenant).pending().first()
        return (pending or add_member(world.tenant, "Technician", email=f"pending@{world.tenant.slug}.invite",
                                      accepted=False)).pk
    if kind == "audit_entry":
        from copilot_admin.audit.models import AuditEntry
        from copilot_admin.audit.services import audit_event_record

        entry = AuditEntry.objects.for_tenant(world.tenant).filter(action="test.policy_table").first()
        return (entry or audit_event_record(tenant=world.tenant, actor=None, action="test.policy_table")).pk
    if kind == "access_review":
        from copilot_admin.compliance.models import ReviewCampaign

        campaign = ReviewCampaign.objects.for_tenant(world.tenant).filter(name="policy-table").first()
        campaign = campaign or ReviewCampaign.objects.for_tenant(world.tenant).create(
            tenant=world.tenant, name="policy-table")
        return campaign.pk
    if kind == "integration_key":
        from copilot_admin.identity.services import integration_key_create

        key, _ = integration_key_create(actor=world.members["admin"], name="policy-table", scopes=["read"])
        return key.pk
    raise KeyError(kind)


def all_routes():
    """(name, route pattern, callback) for every URL pattern of the project."""

    def walk(patterns, prefix="", namespace=None):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
            else:
                name = f"{namespace}:{pattern.name}" if namespace else pattern.name
                yield name, prefix + str(pattern.pattern), pattern.callback

    return list(walk(get_resolver().url_patterns))


def api_methods(callback) -> dict[str, str]:
    """method -> action (viewsets) or method -> method (plain API views), as served."""
    cls = getattr(callback, "cls", None)
    allowed = set(getattr(cls, "http_method_names", [])) - {"head", "options"}
    actions = getattr(callback, "actions", None)
    if actions:
        return {m: a for m, a in actions.items() if m in allowed}
    return {m: m for m in ("get", "post", "patch", "put", "delete") if hasattr(cls, m) and m in allowed}

"""The policy table: every URL route of the project and the permission it requires.

A route that exists but is missing here fails tests/cross/test_permission_matrix.py, so a new
route cannot ship without a declared, tested policy.
"""

from django.urls import URLResolver, get_resolver

from copilot_admin.access.permissions import ANY_MEMBER, Perm

PUBLIC = "public"
AUTHENTICATED = "authenticated"
OPERATOR = "operator"

# Routes outside any tenant: name -> who may use them.
GLOBAL_ROUTES = {
    "home": AUTHENTICATED,
    "login": PUBLIC,
    "logout": PUBLIC,
    "password_reset_confirm": PUBLIC,
    "schema": PUBLIC,
    "api-docs": PUBLIC,
    "api:auth-token": PUBLIC,
    "platform:tenants": OPERATOR,
    "platform:tenant_create": OPERATOR,
    "platform:tenant_edit": OPERATOR,
    "api:platform-tenants-list": OPERATOR,
    "api:platform-tenants-detail": OPERATOR,
}

# Tenant pages (GET): name -> permission.
TENANT_PAGES = {
    "tenants:overview": ANY_MEMBER,
    "tenants:users": Perm.USERS,
    "tenants:user_create": Perm.USERS,
    "tenants:user_edit": Perm.USERS,
    "tenants:companies": ANY_MEMBER,
    "tenants:company_create": Perm.COMPANIES,
    "tenants:company_edit": Perm.COMPANIES,
    "tenants:settings": Perm.COPILOT_SETTINGS,
    "tenants:login_security": Perm.USERS,
    "access:roles": Perm.ROLES,
    "access:role_create": Perm.ROLES,
    "access:role_edit": Perm.ROLES,
}

# Tenant API: (name, method) -> permission.
TENANT_API = {
    ("api:users-list", "get"): Perm.USERS,
    ("api:users-list", "post"): Perm.USERS,
    ("api:users-detail", "get"): Perm.USERS,
    ("api:users-detail", "patch"): Perm.USERS,
    ("api:roles-list", "get"): Perm.ROLES,
    ("api:roles-list", "post"): Perm.ROLES,
    ("api:roles-detail", "get"): Perm.ROLES,
    ("api:roles-detail", "patch"): Perm.ROLES,
    ("api:roles-detail", "delete"): Perm.ROLES,
    ("api:companies-list", "get"): ANY_MEMBER,
    ("api:companies-list", "post"): Perm.COMPANIES,
    ("api:companies-detail", "get"): ANY_MEMBER,
    ("api:companies-detail", "patch"): Perm.COMPANIES,
    ("api:settings", "get"): ANY_MEMBER,
    ("api:settings", "patch"): Perm.COPILOT_SETTINGS,
}

# Which object of the tenant a route's <pk> names.
OBJECT_KIND = {
    "tenants:user_edit": "membership",
    "tenants:company_edit": "company",
    "access:role_edit": "role",
    "api:users-detail": "membership",
    "api:companies-detail": "company",
    "api:roles-detail": "role",
}


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

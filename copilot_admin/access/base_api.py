"""Base classes for the REST API.

`TenantViewSet` subclasses declare `permissions = {action: Perm | ANY_MEMBER}`; an action
missing from the map is refused (fail-closed). Before any handler runs the base class
authenticates, resolves the tenant and the caller's accepted, active membership (missing,
foreign, pending, or a credential older than the membership's last deactivation: 404),
refuses suspended tenants, checks the declared permission, and narrows the audit scope to
the API channel and the tenant. A platform operator's access to a tenant is recorded in that
tenant's audit log, once per request, as the pages do (`operator.tenant_access`, via api).
The queryset is owned by the base class and already narrowed to the tenant; subclasses
narrow further with `narrow_queryset`, never by overriding `get_queryset`.
"""

from rest_framework import permissions as drf_permissions
from rest_framework import viewsets
from rest_framework.exceptions import NotFound as DRFNotFound

from copilot_admin.access.base_views import refuse_final_overrides
from copilot_admin.access.policy import has_permission
from copilot_admin.audit.hooks import audit_access_denied, audit_operator_tenant_access
from copilot_admin.core.context import Channel, request_ids, scope_enter, scope_exit
from copilot_admin.core.errors import NotFound, PermissionRefused
from tenants.selectors import membership_resolve
from tenants.sessions import credential_issued_at

_FINAL_METHODS = ("get_queryset", "initial", "get_object")
_AUDITED_REFUSALS = ("permission_denied", "escalation_refused")


class AuditedAPIMixin:
    """Runs the handler in the API's audit scope (channel api, the tenant), and records a
    platform operator's access to a tenant (after the permission checks passed)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        actor = request.user if request.user.is_authenticated else None
        tenant = getattr(self, "tenant", None)
        self._audit_scope = scope_enter(tenant=tenant, channel=Channel.API, **request_ids(request))
        if tenant is not None and getattr(actor, "is_platform_operator", False):
            audit_operator_tenant_access(request=request, tenant=tenant)

    def handle_exception(self, exc):
        # A member refused by its security role (here or by a service: no escalation) is recorded.
        membership = getattr(self, "membership", None)
        if isinstance(exc, PermissionRefused) and exc.code in _AUDITED_REFUSALS and membership is not None:
            permission = self.permission_for_action() if hasattr(self, "permission_for_action") else None
            audit_access_denied(request=self.request, membership=membership, permission=permission, code=exc.code)
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        scope_exit(getattr(self, "_audit_scope", None))
        self._audit_scope = None
        return super().finalize_response(request, response, *args, **kwargs)


class TenantPermission(drf_permissions.BasePermission):
    """Resolves the tenant and membership and checks the view's declared permission."""

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False  # DRF answers 401
        try:
            membership = membership_resolve(
                user=request.user, tenant_slug=view.kwargs["tenant_slug"], issued_at=credential_issued_at(request)
            )
        except NotFound as exc:
            raise DRFNotFound() from exc
        if not membership.tenant.is_active:
            raise PermissionRefused("This tenant is suspended.", code="tenant_suspended")
        view.membership = request.membership = membership
        view.tenant = request.tenant = membership.tenant
        method = (request.method or "").lower()
        if method not in view.http_method_names or not hasattr(view, method):
            return True  # the view answers 405 without running any handler
        required = view.permission_for_action()
        if required is None or not has_permission(membership, required):
            raise PermissionRefused("Your security role does not allow this action.")
        return True


class TenantAPIMixin(AuditedAPIMixin):
    permissions: dict = {}
    permission_classes = [TenantPermission]
    base_class = True
    model = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        refuse_final_overrides(cls, _FINAL_METHODS)
        if not cls.__dict__.get("base_class") and not cls.__dict__.get("permissions"):
            raise TypeError(f"{cls.__name__} must declare permissions = {{action: Perm}}.")

    def permission_for_action(self):
        action = getattr(self, "action", None) or (self.request.method or "").lower()
        return self.permissions.get(action)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no tenant
            return self.model.objects.none()
        return self.narrow_queryset(self.model.objects.for_tenant(self.tenant))

    def narrow_queryset(self, queryset):
        return queryset

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["membership"] = getattr(self, "membership", None)
        return context

    def get_object(self):
        obj = self.get_queryset().filter(pk=self.kwargs["pk"]).first()
        if obj is None:
            raise NotFound("Not found.")
        return obj


class TenantViewSet(TenantAPIMixin, viewsets.GenericViewSet):
    base_class = True
    lookup_value_regex = r"[0-9]{1,18}"


class IsPlatformOperator(drf_permissions.BasePermission):
    """Platform API: operators only; others get 404 (the platform API is not advertised)."""

    denies_with_not_found = True  # the schema (access/schema.py) documents the 404

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if not request.user.is_platform_operator:
            raise DRFNotFound()
        return True


class OperatorViewSet(AuditedAPIMixin, viewsets.GenericViewSet):
    permission_classes = [IsPlatformOperator]
    lookup_value_regex = r"[0-9]{1,18}"

"""Base classes for tenant pages and operator pages.

A tenant page declares `permission_required` (a `Perm` or `ANY_MEMBER`). Before the handler
runs, the base class resolves the tenant from the URL, the user's accepted, active membership
(missing, foreign, pending, or a session older than the membership's last deactivation: 404),
refuses suspended tenants, and checks the permission with the one policy function. List and
object pages get their queryset from the base class, already narrowed to the tenant:
subclasses may not override `get_queryset`, only `narrow_queryset`.
"""

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404
from django.views.generic import DetailView, ListView

from copilot_admin.access.policy import has_permission, permissions_of
from copilot_admin.audit.hooks import audit_access_denied, audit_operator_tenant_access
from copilot_admin.core.context import Channel, audit_scope, request_ids
from copilot_admin.core.errors import NotFound
from tenants.selectors import membership_resolve
from tenants.sessions import credential_issued_at

_FINAL_METHODS = ("get_queryset", "dispatch")


def refuse_final_overrides(cls, final_methods: tuple[str, ...]) -> None:
    """Class-creation guard of the base classes: a concrete subclass (one without its own
    `base_class = True`) may not replace the methods that scope and authorize the request."""
    if cls.__dict__.get("base_class"):
        return
    overridden = [name for name in final_methods if name in cls.__dict__]
    if overridden:
        raise TypeError(f"{cls.__name__} must not override {', '.join(overridden)}; use narrow_queryset().")


class TenantPageMixin(AccessMixin):
    permission_required = None
    base_class = True  # set only on the base classes in this module

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        refuse_final_overrides(cls, _FINAL_METHODS)

    def dispatch(self, request, *args, **kwargs):
        if self.permission_required is None:
            raise ImproperlyConfigured(f"{type(self).__name__} declares no permission_required.")
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        try:
            membership = membership_resolve(
                user=request.user, tenant_slug=kwargs["tenant_slug"], issued_at=credential_issued_at(request)
            )
        except NotFound as exc:
            raise Http404("Not found.") from exc
        if not membership.tenant.is_active:
            raise PermissionDenied("This tenant is suspended.")
        request.membership = self.membership = membership
        request.tenant = self.tenant = membership.tenant
        request.permissions = permissions_of(membership)
        if not has_permission(membership, self.permission_required):
            audit_access_denied(request=request, membership=membership, permission=self.permission_required)
            raise PermissionDenied("Your security role does not allow this page.")
        with audit_scope(tenant=membership.tenant, channel=Channel.WEB, **request_ids(request)):
            if request.user.is_platform_operator:
                audit_operator_tenant_access(request=request, tenant=membership.tenant)
            self.prepare()
            return super().dispatch(request, *args, **kwargs)

    def prepare(self) -> None:
        """Runs after the access checks, before the handler."""


class TenantListView(TenantPageMixin, ListView):
    base_class = True
    paginate_by = 50

    def get_queryset(self):
        return self.narrow_queryset(self.model.objects.for_tenant(self.tenant))

    def narrow_queryset(self, queryset):
        return queryset


class TenantObjectMixin(TenantPageMixin):
    """One tenant-owned object by pk, looked up inside the tenant: foreign or missing is 404."""

    base_class = True

    def get_queryset(self):
        return self.narrow_queryset(self.model.objects.for_tenant(self.tenant))

    def narrow_queryset(self, queryset):
        return queryset

    def prepare(self) -> None:
        self.object = self.get_object()

    def get_object(self, queryset=None):
        obj = (queryset or self.get_queryset()).filter(pk=self.kwargs["pk"]).first()
        if obj is None:
            raise Http404("Not found.")
        return obj


class TenantDetailView(TenantObjectMixin, DetailView):
    base_class = True


class OperatorPageMixin(AccessMixin):
    """Platform console pages: platform operators only (others get 404: the console is not advertised)."""

    permission_required = "platform.operator"

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not request.user.is_platform_operator:
            raise Http404("Not found.")
        self.prepare()
        with audit_scope(channel=Channel.WEB, **request_ids(request)):
            return super().dispatch(request, *args, **kwargs)

    def prepare(self) -> None:
        """Runs after the operator check, before the handler (e.g. loads the object the URL names)."""

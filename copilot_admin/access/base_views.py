"""Base classes of the pages: tenant pages (plain, list, one object) and the platform console.

A tenant page declares `permission_required` (a `Perm` or `ANY_MEMBER`); a console page
inherits `PlatformPerm.OPERATOR` or declares another platform permission. Before the handler
runs, the base class lets the request in through the resolver (`access.resolver`: missing or
foreign tenant 404, suspended tenant or missing permission 403, a platform operator's access
recorded) and runs the handler in the request's audit scope, reset in a `finally`. List and
object pages get their queryset from the base class, already narrowed to the tenant.

The guard (`BaseClassGuard`): a class that is not itself a base may not replace the methods
that let a request in and scope it (the message names the hook to use instead), and must
declare its permission; both are refused when the class is created, not when it runs.
"""

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import DetailView, ListView

from copilot_admin.access.permissions import ANY_MEMBER, PlatformPerm, all_permissions
from copilot_admin.access.policy import has_permission
from copilot_admin.access.resolver import platform_request_resolve, tenant_request_resolve
from copilot_admin.core.context import Channel, audit_scope, request_ids
from copilot_admin.core.errors import NotFound, PermissionRefused
from tenants.models import Tenant

# The method a subclass may not override -> what to do instead.
SAFE_HOOKS = {
    "dispatch": "put work that must run after the access checks in prepare()",
    "initial": "put work that must run after the access checks in prepare()",
    "get_queryset": "narrow the tenant's queryset in narrow_queryset()",
    "get_object": "narrow the queryset the object is looked up in with narrow_queryset()",
}


def is_tenant_permission(value) -> bool:
    return value is ANY_MEMBER or (isinstance(value, str) and value in all_permissions())


def is_platform_permission(value) -> bool:
    return isinstance(value, str) and value in PlatformPerm.values


class BaseClassGuard:
    """Class-creation guard shared by every base class of pages and API.

    A base class sets `base_class = True` in its own body and names in `final_methods` the
    methods that let a request in and scope it. For every other class, each final method must
    come from a base class (not from the class itself, nor from a mixin placed before the
    base), and `declared_permissions(cls)` must name at least one permission that passes
    `permission_check`.
    """

    base_class = True
    final_methods: tuple[str, ...] = ()
    permission_attribute = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("base_class"):
            return
        for name in cls.final_methods:
            owner = next((klass for klass in cls.__mro__ if name in vars(klass)), None)
            if owner is not None and not vars(owner).get("base_class"):
                raise TypeError(
                    f"{cls.__name__} must not override {name}() (here in {owner.__name__}): {SAFE_HOOKS[name]}."
                )
        declared = cls.declared_permissions()
        if not declared or not all(cls.permission_check(value) for value in declared):
            raise TypeError(
                f"{cls.__name__} must declare {cls.permission_attribute} "
                f"({cls.permission_hint()}); found {getattr(cls, cls.permission_attribute, None)!r}."
            )

    @classmethod
    def declared_permissions(cls) -> list:
        value = getattr(cls, cls.permission_attribute, None)
        return [] if value is None else [value]

    @staticmethod
    def permission_check(value) -> bool:
        return is_tenant_permission(value)

    @classmethod
    def permission_hint(cls) -> str:
        return "a Perm or ANY_MEMBER"


class TenantPageMixin(BaseClassGuard, AccessMixin):
    """A page of one tenant. Subclasses declare `permission_required`; `prepare()` runs after
    the access checks, before the handler, in the request's audit scope.

    `read_permission` (optional) lets a reader in as well, for GET and HEAD only: the page
    shows itself read-only to them (`self.read_only`); any other method still needs
    `permission_required` (refused 403 and recorded)."""

    base_class = True
    final_methods = ("dispatch",)
    permission_attribute = "permission_required"
    permission_required = None
    read_permission = None

    @classmethod
    def declared_permissions(cls) -> list:
        declared = super().declared_permissions()
        return declared if cls.read_permission is None or not declared else [*declared, cls.read_permission]

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        try:
            reading = request.method in ("GET", "HEAD") and self.read_permission is not None
            access = tenant_request_resolve(
                request=request, tenant_slug=kwargs["tenant_slug"], permission=self.permission_required,
                alternatives=(self.read_permission,) if reading else (), channel=Channel.WEB,
            )
        except NotFound as exc:
            console_page = self._operator_console_page(request, kwargs["tenant_slug"])
            if console_page:
                return redirect(console_page)
            raise Http404("Not found.") from exc
        except PermissionRefused as exc:
            raise PermissionDenied(exc.message) from exc
        self.access, self.membership, self.tenant = access, access.membership, access.tenant
        # A reader let in by `read_permission` only: the page offers no change.
        self.read_only = (
            self.permission_required is not ANY_MEMBER and self.permission_required not in access.permissions
        )
        with access.scope(request):
            self.prepare()
            return super().dispatch(request, *args, **kwargs)

    def prepare(self) -> None:
        """Runs after the access checks, before the handler (e.g. loads the object the URL names)."""

    # A platform operator is never a member of a tenant; on the page naming this console page
    # (a URL name taking the tenant's pk) an operator is sent there instead of a 404.
    operator_console_page: str | None = None

    def _operator_console_page(self, request, tenant_slug: str) -> str | None:
        if not self.operator_console_page or not has_permission(request.user, PlatformPerm.OPERATOR):
            return None
        tenant = Tenant.objects.filter(slug=tenant_slug).only("pk").first()
        return reverse(self.operator_console_page, kwargs={"pk": tenant.pk}) if tenant else None


class _TenantQuerysetMixin:
    base_class = True

    def get_queryset(self):
        return self.narrow_queryset(self.model.objects.for_tenant(self.tenant))

    def narrow_queryset(self, queryset):
        """The tenant's queryset, narrowed further by the page (filters, ordering, scope)."""
        return queryset


class TenantListView(_TenantQuerysetMixin, TenantPageMixin, ListView):
    base_class = True
    final_methods = ("dispatch", "get_queryset")
    paginate_by = 50


class TenantObjectMixin(_TenantQuerysetMixin, TenantPageMixin):
    """One tenant-owned object by pk, looked up inside the tenant: foreign or missing is 404."""

    base_class = True
    final_methods = ("dispatch", "get_queryset", "get_object")

    def prepare(self) -> None:
        self.object = self.get_object()

    def get_object(self, queryset=None):
        obj = self.get_queryset().filter(pk=self.kwargs["pk"]).first()
        if obj is None:
            raise Http404("Not found.")
        return obj


class TenantDetailView(TenantObjectMixin, DetailView):
    base_class = True


class PlatformPermissionDeclared:
    """What the console's bases (pages and API) declare: a `PlatformPerm` in `permission_required`,
    platform operators by default."""

    permission_attribute = "permission_required"
    permission_required = PlatformPerm.OPERATOR

    @staticmethod
    def permission_check(value) -> bool:
        return is_platform_permission(value)

    @classmethod
    def permission_hint(cls) -> str:
        return "a PlatformPerm"


class OperatorPageMixin(PlatformPermissionDeclared, BaseClassGuard, AccessMixin):
    """A page of the platform console: platform operators only (`permission_required`, or
    platform auditors for the audit log across tenants); others get 404, the console is not
    advertised. `prepare()` runs after the check, before the handler."""

    base_class = True
    final_methods = ("dispatch",)

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        try:
            platform_request_resolve(request=request, permission=self.permission_required)
        except NotFound as exc:
            raise Http404("Not found.") from exc
        with audit_scope(channel=Channel.WEB, **request_ids(request)):
            self.prepare()
            return super().dispatch(request, *args, **kwargs)

    def prepare(self) -> None:
        """Runs after the operator check, before the handler (e.g. loads the object the URL names)."""

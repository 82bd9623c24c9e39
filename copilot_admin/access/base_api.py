"""Base classes of the REST API, one per kind of request, all letting requests in through the
resolver (`access.resolver`), as the pages do:

- `TenantAPIView`: one object of the tenant (`settings/`, `limits/`, `usage/`);
  `permissions = {method: Perm | ANY_MEMBER}`.
- `TenantViewSet`: the tenant's collections; `permissions = {action: Perm | ANY_MEMBER}`; the
  queryset is owned by the base class and already narrowed to the tenant.
- `TenantAsyncAPIView`: an async handler (the copilot call): authentication, the resolver
  and `prepare()` run off the event loop in one hop (`run_blocking`), the handler awaits. Its versioned reads
  (`read_plan`: the membership, and what a subclass adds) are read with the token's in one
  cache round trip (core/versioned_cache.py `planned_reads`).
- `OperatorAPIView`, `OperatorViewSet`: the platform API, platform operators only (others 404).

A method or action missing from `permissions` is refused (fail-closed); `alternatives =
{action: Perm}` names one more permission that allows it. Before any handler runs the base
class authenticates (401), resolves the tenant and membership (404), refuses a suspended
tenant and a missing permission (403, recorded), records a platform operator's access, and
runs `prepare()` and the handler in the request's audit scope, reset in a `finally`. A
member refused by a service (no escalation) is recorded too. The guard of `BaseClassGuard`
refuses, at class creation, a subclass that overrides `dispatch`, `initial`, `get_queryset`
or `get_object` (whichever the base owns) or leaves a served method or action undeclared.
"""

import inspect
from contextlib import ExitStack

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse
from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from copilot_admin.access.base_views import BaseClassGuard, PlatformPermissionDeclared
from copilot_admin.access.permissions import ANY_MEMBER
from copilot_admin.access.resolver import platform_request_resolve, tenant_request_resolve
from copilot_admin.audit.hooks import audit_access_denied
from copilot_admin.core.context import Channel, audit_scope, request_ids
from copilot_admin.core.errors import NotFound, PermissionRefused
from copilot_admin.core.versioned_cache import Read, planned_reads
from tenants.selectors import membership_read

_AUDITED_REFUSALS = ("permission_denied", "escalation_refused")
_HTTP_HANDLERS = ("get", "post", "put", "patch", "delete")


class _RequestScopeMixin:
    """Sync API bases: what `initial` enters for the request (its audit scope) is left in
    `dispatch`'s `finally`, whatever the handler raised."""

    base_class = True

    def dispatch(self, request, *args, **kwargs):
        self.request_scope = ExitStack()
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            self.request_scope.close()

    def prepare(self) -> None:
        """Runs after the access checks, before the handler, in the request's audit scope."""


class _TenantAPIBase(BaseClassGuard):
    base_class = True
    permission_attribute = "permissions"
    permissions: dict = {}
    alternatives: dict = {}
    permission_classes = [IsAuthenticated]
    # True only where a service checks the tenant's state and the declared permission itself,
    # in an order the contract fixes, and records each refusal (the copilot call's access chain).
    access_checked_by_service = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("base_class"):
            return
        undeclared = sorted(set(cls.served_actions()) - set(cls.permissions))
        if undeclared:
            raise TypeError(f"{cls.__name__} must declare permissions for {', '.join(undeclared)}.")

    @classmethod
    def declared_permissions(cls) -> list:
        return [*cls.permissions.values(), *cls.alternatives.values()]

    @classmethod
    def permission_hint(cls) -> str:
        return "{method or action: Perm or ANY_MEMBER}"

    @classmethod
    def served_actions(cls) -> list[str]:
        """The methods (API views) or actions (viewsets) the class serves."""
        allowed = set(cls.http_method_names)
        return [name for name in _HTTP_HANDLERS if name in allowed and callable(getattr(cls, name, None))]

    def action_name(self) -> str:
        return getattr(self, "action", None) or (self.request.method or "").lower()

    def permission_for_action(self):
        return self.permissions.get(self.action_name())

    def let_in(self, request) -> None:
        """Resolve the request's tenant access (`tenant_request_resolve`) for this method or action."""
        method = (request.method or "").lower()
        if method in self.http_method_names and hasattr(self, method):
            permission = self.permission_for_action()
            alternative = self.alternatives.get(self.action_name())
        else:  # the base answers 405 without running any handler: the tenant is still checked
            permission, alternative = ANY_MEMBER, None
        self.access = tenant_request_resolve(
            request=request, tenant_slug=self.kwargs["tenant_slug"], permission=permission,
            alternatives=(alternative,) if alternative is not None else (), channel=Channel.API,
            early_checks=not self.access_checked_by_service,
        )
        self.tenant, self.membership = self.access.tenant, self.access.membership

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["membership"] = getattr(self, "membership", None)
        return context


class _SyncTenantAPIBase(_RequestScopeMixin, _TenantAPIBase):
    base_class = True

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.let_in(request)
        self.request_scope.enter_context(self.access.scope(request))
        self.prepare()

    def handle_exception(self, exc):
        # A member let in, then refused by a service (no escalation): recorded, as the base
        # class records its own refusals.
        if isinstance(exc, PermissionRefused) and exc.code in _AUDITED_REFUSALS and getattr(self, "access", None):
            audit_access_denied(
                request=self.request, membership=self.membership, permission=self.permission_for_action(), code=exc.code
            )
        return super().handle_exception(exc)


class TenantAPIView(_SyncTenantAPIBase, APIView):
    """One object of the tenant: each served method declared in `permissions`."""

    base_class = True
    final_methods = ("dispatch", "initial")


class TenantViewSet(_SyncTenantAPIBase, viewsets.GenericViewSet):
    """The tenant's collection of `model`, narrowed by `narrow_queryset`; objects by pk in it."""

    base_class = True
    final_methods = ("dispatch", "initial", "get_queryset", "get_object")
    lookup_value_regex = r"[0-9]{1,18}"
    model = None

    @classmethod
    def served_actions(cls) -> list[str]:
        standard = ("list", "retrieve", "create", "update", "partial_update", "destroy")
        return [name for name in standard if callable(getattr(cls, name, None))] + [
            extra.__name__ for extra in cls.get_extra_actions()
        ]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no tenant
            return self.model.objects.none()
        return self.narrow_queryset(self.model.objects.for_tenant(self.tenant))

    def narrow_queryset(self, queryset):
        """The tenant's queryset, narrowed further by the viewset (filters, ordering, scope)."""
        return queryset

    def get_object(self):
        obj = self.get_queryset().filter(pk=self.kwargs["pk"]).first()
        if obj is None:
            raise NotFound("Not found.")
        return obj


class TenantAsyncAPIView(_TenantAPIBase, APIView):
    """An API view whose handlers are coroutines. Authentication, the resolver and the view's
    `prepare()` run as one blocking hop (`run_blocking`); the handler then runs on the
    event loop in the request's audit scope, and its answer is rendered here (the response
    needs no thread of its own)."""

    base_class = True
    final_methods = ("dispatch", "initial")

    async def run_blocking(self, fn, /, *args, **kwargs):
        """Blocking work (the database) of this request, off the event loop. A subclass may run
        it on a pool of its own; `self.caller_thread` is True when the request was not served
        by ASGI (WSGI, Django's test client), whose thread holds the request's connection."""
        return await sync_to_async(fn, thread_sensitive=True)(*args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.let_in(request)

    def prepare(self) -> None:
        """Runs after the access checks, before the handler, in the request's audit scope, as
        on the other bases; here off the event loop, in the hop that authenticated the request
        (blocking work the handler needs costs no hop of its own)."""

    def _let_in_and_prepare(self, request, *args, **kwargs) -> None:
        self.initial(request, *args, **kwargs)
        with self.access.scope(request):
            self.prepare()

    def read_plan(self, user_id: int) -> list[Read]:
        """The versioned reads this request will make once its user is known (the token's
        owner), read in one round trip with the token's: the caller's membership. A subclass
        adds its own."""
        return [membership_read(tenant_slug=self.kwargs["tenant_slug"], user_id=user_id)]

    async def dispatch(self, request, *args, **kwargs):
        """DRF's dispatch, with the blocking steps moved off the event loop."""
        self.args, self.kwargs = args, kwargs
        self.caller_thread = not isinstance(request, ASGIRequest)
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        with audit_scope(channel=Channel.API, **request_ids(request)), planned_reads(self.read_plan):
            try:
                await self.run_blocking(self._let_in_and_prepare, request, *args, **kwargs)
                method = request.method.lower()
                handler = getattr(self, method, self.http_method_not_allowed)
                if method not in self.http_method_names:
                    handler = self.http_method_not_allowed
                with self.access.scope(request):
                    response = handler(request, *args, **kwargs)
                    if inspect.isawaitable(response):
                        response = await response
            except Exception as exc:  # noqa: BLE001 - DRF's own contract: every exception becomes a response
                response = self.handle_exception(exc)
        response = self.finalize_response(request, response, *args, **kwargs)
        # Rendered here (CPU only) and handed over as a plain response: Django would render a
        # template response in a thread hop of its own.
        response.render()
        self.response = HttpResponse(response.content, status=response.status_code, headers=dict(response.items()))
        return self.response


class _OperatorAPIBase(PlatformPermissionDeclared, _RequestScopeMixin, BaseClassGuard):
    base_class = True
    final_methods = ("dispatch", "initial")
    permission_classes = [IsAuthenticated]
    denies_with_not_found = True  # the schema (core/schema.py) documents the 404

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        platform_request_resolve(request=request, permission=self.permission_required)
        self.request_scope.enter_context(audit_scope(channel=Channel.API, **request_ids(request)))
        self.prepare()


class OperatorAPIView(_OperatorAPIBase, APIView):
    """One object of the platform API (the platform limit policy)."""

    base_class = True


class OperatorViewSet(_OperatorAPIBase, viewsets.GenericViewSet):
    """A collection of the platform API. Operators see every tenant's objects: the viewset
    declares its own queryset."""

    base_class = True
    lookup_value_regex = r"[0-9]{1,18}"

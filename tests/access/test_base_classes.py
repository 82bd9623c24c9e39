"""The base classes of pages and API (one per kind of request, all on one resolver) refuse, at
class creation, subclasses that would bypass the access checks or tenant scoping, or that
declare no permission; and they leave the request's audit scope as they found it."""

import inspect

import pytest
from asgiref.sync import async_to_sync
from django.test import RequestFactory
from django.views.generic import TemplateView
from rest_framework import mixins
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate

from copilot_admin.access.base_api import (
    OperatorAPIView,
    OperatorViewSet,
    TenantAPIView,
    TenantAsyncAPIView,
    TenantViewSet,
)
from copilot_admin.access.base_views import (
    OperatorPageMixin,
    TenantDetailView,
    TenantListView,
    TenantObjectMixin,
    TenantPageMixin,
)
from copilot_admin.access.permissions import ANY_MEMBER, Perm, PlatformPerm
from copilot_admin.copilot.api import CopilotCallView
from copilot_admin.copilot.features import get_feature
from copilot_admin.core.context import AuditScope, current_scope
from tenants.models import ClientCompany


def _handler(self, *args, **kwargs):
    return None


# base -> (its classes, the body of a well-formed subclass, the methods the base owns)
BASES = {
    "page": ((TenantPageMixin, TemplateView), {"permission_required": Perm.USERS}, ["dispatch"]),
    "list page": ((TenantListView,), {"permission_required": Perm.USERS, "model": ClientCompany},
                  ["dispatch", "get_queryset"]),
    "object page": ((TenantObjectMixin, TemplateView), {"permission_required": Perm.USERS, "model": ClientCompany},
                    ["dispatch", "get_queryset", "get_object"]),
    "detail page": ((TenantDetailView,), {"permission_required": Perm.USERS, "model": ClientCompany},
                    ["dispatch", "get_queryset", "get_object"]),
    "api view": ((TenantAPIView,), {"permissions": {"get": ANY_MEMBER}, "get": _handler}, ["dispatch", "initial"]),
    "api viewset": ((mixins.ListModelMixin, TenantViewSet),
                    {"permissions": {"list": Perm.USERS}, "model": ClientCompany},
                    ["dispatch", "initial", "get_queryset", "get_object"]),
    "async api view": ((TenantAsyncAPIView,), {"permissions": {"post": "copilot.summarize"}, "post": _handler},
                       ["dispatch", "initial"]),
    "copilot call": ((CopilotCallView,), {"feature": get_feature("summarize")}, ["dispatch", "initial"]),
    "operator page": ((OperatorPageMixin, TemplateView), {}, ["dispatch"]),
    "operator api view": ((OperatorAPIView,), {"get": _handler}, ["dispatch", "initial"]),
    "operator viewset": ((OperatorViewSet,), {}, ["dispatch", "initial"]),
}
OWNED_METHODS = [(base, method) for base, (_, _, methods) in BASES.items() for method in methods]
HOOKS = {"dispatch": "prepare()", "initial": "prepare()", "get_queryset": "narrow_queryset()",
         "get_object": "narrow_queryset()"}


@pytest.mark.parametrize("base", BASES)
def test_a_well_formed_subclass_is_accepted(base):
    bases, body, _ = BASES[base]
    assert type("Fine", bases, dict(body))


@pytest.mark.parametrize("base,method", OWNED_METHODS)
def test_overriding_a_method_the_base_owns_is_refused_naming_the_hook(base, method):
    bases, body, _ = BASES[base]
    with pytest.raises(TypeError, match=rf"must not override {method}\(\).*{HOOKS[method].replace('()', '')}"):
        type("Leaky", bases, {**body, method: _handler})


@pytest.mark.parametrize("base,method", OWNED_METHODS)
def test_a_mixin_placed_before_the_base_cannot_override_it_either(base, method):
    bases, body, _ = BASES[base]
    mixin = type("SneakyMixin", (), {method: _handler})
    with pytest.raises(TypeError, match=rf"{method}\(\) \(here in SneakyMixin\)"):
        type("Leaky", (mixin, *bases), dict(body))


@pytest.mark.parametrize("base,attribute,bad", [
    ("page", "permission_required", None),
    ("page", "permission_required", "admin.everything"),
    ("list page", "permission_required", None),
    ("object page", "permission_required", None),
    ("detail page", "permission_required", None),
    ("api view", "permissions", {}),
    ("api view", "permissions", {"get": "admin.everything"}),
    ("api viewset", "permissions", {}),
    ("async api view", "permissions", {}),
    ("operator page", "permission_required", Perm.USERS),
    ("operator page", "permission_required", None),
    ("operator api view", "permission_required", ANY_MEMBER),
    ("operator viewset", "permission_required", None),
])
def test_a_subclass_without_a_valid_permission_is_refused(base, attribute, bad):
    bases, body, _ = BASES[base]
    with pytest.raises(TypeError, match=f"must declare {attribute}"):
        type("Undeclared", bases, {**body, attribute: bad})


def test_the_copilot_call_derives_its_permission_from_its_feature():
    view = type("Translate", (CopilotCallView,), {"feature": get_feature("time-entry")})
    assert view.permissions == {"post": "copilot.time_entry"}
    with pytest.raises(TypeError, match="must declare permissions"):
        type("NoFeature", (CopilotCallView,), {})


@pytest.mark.parametrize("base,body,missing", [
    ("api view", {"permissions": {"get": ANY_MEMBER}, "get": _handler, "patch": _handler}, "patch"),
    ("api viewset", {"permissions": {"list": Perm.USERS}, "model": ClientCompany, "destroy": _handler}, "destroy"),
    ("async api view", {"permissions": {"post": "copilot.summarize"}, "post": _handler, "delete": _handler},
     "delete"),
])
def test_every_served_method_or_action_is_declared(base, body, missing):
    bases, _, _ = BASES[base]
    with pytest.raises(TypeError, match=f"must declare permissions for {missing}"):
        type("HalfDeclared", bases, body)


def test_a_viewset_extra_action_is_declared():
    from rest_framework.decorators import action

    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        return None

    with pytest.raises(TypeError, match="must declare permissions for archive"):
        type("Archiving", (TenantViewSet,), {"permissions": {"retrieve": Perm.USERS}, "model": ClientCompany,
                                             "archive": archive})


# -- the request's audit scope is reset on the way out, also when the handler fails --------------


class Boom(Exception):
    pass


async def _awaited(awaitable):
    return await awaitable


def _scope_seen(view_class, request, *, async_view=False, **kwargs):
    """Run `view_class` on `request`; its handler records the scope it ran in and then raises."""
    seen = {}

    def record(self, *args, **kw):
        seen["scope"] = current_scope()
        raise Boom

    async def arecord(self, *args, **kw):
        return record(self)

    method = request.method.lower()
    view = type("Probe", (view_class,), {method: arecord if async_view else record})
    before = current_scope()
    with pytest.raises(Boom):
        result = view.as_view()(request, **kwargs)
        if inspect.isawaitable(result):
            async_to_sync(_awaited)(result)
    assert current_scope() == before == AuditScope()
    return seen["scope"]


def test_page_scope_is_reset_in_a_finally(tenant_a):
    request = RequestFactory().get("/t/alpha/")
    request.user = tenant_a.members["admin"].user
    request.session = {}
    scope = _scope_seen(type("Page", (TenantPageMixin, TemplateView), {"permission_required": ANY_MEMBER}), request,
                        tenant_slug="alpha")
    assert scope.tenant == tenant_a.tenant and scope.channel == "web" and scope.correlation_id


@pytest.mark.parametrize("base", [TenantAPIView, TenantAsyncAPIView])
def test_api_scope_is_reset_in_a_finally(tenant_a, base):
    request = APIRequestFactory().get("/api/v1/tenants/alpha/x/")
    force_authenticate(request, user=tenant_a.members["admin"].user)
    view_class = type("Api", (base,), {"permissions": {"get": ANY_MEMBER}, "get": _handler})
    scope = _scope_seen(view_class, request, async_view=base is TenantAsyncAPIView, tenant_slug="alpha")
    assert scope.tenant == tenant_a.tenant and scope.channel == "api"


def test_operator_api_scope_is_reset_in_a_finally(operator):
    request = APIRequestFactory().get("/api/v1/platform/x/")
    force_authenticate(request, user=operator)
    scope = _scope_seen(type("Op", (OperatorAPIView,), {"get": _handler}), request)
    assert scope.tenant is None and scope.channel == "api"


def test_the_platform_auditor_page_declares_its_platform_permission():
    from copilot_admin.compliance.views import PlatformAuditLogView

    assert PlatformAuditLogView.permission_required == PlatformPerm.AUDITOR


def test_an_api_answer_still_comes_back_through_the_base(tenant_a):
    request = APIRequestFactory().get("/api/v1/tenants/alpha/x/")
    force_authenticate(request, user=tenant_a.members["tech"].user)
    view = type("Hello", (TenantAPIView,), {"permissions": {"get": ANY_MEMBER},
                                            "get": lambda self, request, **kw: Response({"tenant": self.tenant.slug})})
    assert view.as_view()(request, tenant_slug="alpha").data == {"tenant": "alpha"}

"""The base classes refuse subclasses that would bypass tenant scoping or the declared permission."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from django.views.generic import TemplateView

from copilot_admin.access.base_api import TenantViewSet
from copilot_admin.access.base_views import TenantListView, TenantPageMixin
from copilot_admin.access.permissions import Perm
from tenants.models import ClientCompany


@pytest.mark.parametrize("method", ["get_queryset", "dispatch"])
def test_page_subclass_cannot_override_scoping(method):
    with pytest.raises(TypeError, match=method):
        type("Leaky", (TenantListView,), {"permission_required": Perm.USERS, method: lambda self: None})


@pytest.mark.parametrize("method", ["get_queryset", "initial", "get_object"])
def test_api_subclass_cannot_override_scoping(method):
    with pytest.raises(TypeError, match=method):
        type("Leaky", (TenantViewSet,), {"permissions": {"list": Perm.USERS}, method: lambda self: None})


def test_api_subclass_must_declare_permissions():
    with pytest.raises(TypeError, match="permissions"):
        type("Undeclared", (TenantViewSet,), {"model": ClientCompany})


def test_page_without_declared_permission_refuses_to_run(tenant_a):
    view = type("Undeclared", (TenantPageMixin, TemplateView), {"template_name": "tenants/overview.html"}).as_view()
    request = RequestFactory().get("/t/alpha/")
    request.user = tenant_a.members["admin"].user
    with pytest.raises(ImproperlyConfigured):
        view(request, tenant_slug="alpha")

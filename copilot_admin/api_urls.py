"""REST API routes under /api/v1/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from copilot_admin.access.api import RoleViewSet
from copilot_admin.access.auth_api import AuthTokenView
from copilot_admin.platform.api import PlatformTenantViewSet
from tenants.api import CompanyViewSet, CopilotSettingsView, UserViewSet

tenant_router = SimpleRouter()
tenant_router.register("users", UserViewSet, basename="users")
tenant_router.register("roles", RoleViewSet, basename="roles")
tenant_router.register("companies", CompanyViewSet, basename="companies")

platform_router = SimpleRouter()
platform_router.register("tenants", PlatformTenantViewSet, basename="platform-tenants")

app_name = "api"

urlpatterns = [
    path("auth/token/", AuthTokenView.as_view(), name="auth-token"),
    path("tenants/<slug:tenant_slug>/", include(tenant_router.urls)),
    path("tenants/<slug:tenant_slug>/settings/", CopilotSettingsView.as_view(), name="settings"),
    path("platform/", include(platform_router.urls)),
]

"""REST API routes under /api/v1/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from copilot_admin.access.api import RoleViewSet
from copilot_admin.compliance.api import AuditEntryViewSet
from copilot_admin.compliance.evidence_api import (
    AccessReviewView,
    AuditCheckpointsView,
    DataExchangeView,
    ReviewCampaignViewSet,
)
from copilot_admin.copilot.api import CopilotSettingsView
from copilot_admin.copilot.urls import api_urlpatterns as copilot_api_urlpatterns
from copilot_admin.directory.api import CompanyViewSet, UserViewSet
from copilot_admin.directory.auth_api import AuthTokenView
from copilot_admin.identity.api import IntegrationKeyViewSet
from copilot_admin.identity.sso_api import SsoConfigurationView
from copilot_admin.platform.api import PlatformDeploymentViewSet, PlatformTenantViewSet
from copilot_admin.platform.limits_api import PlatformAbuseCaseViewSet, PlatformLimitsView
from copilot_admin.platform.sso_domain_api import PlatformSsoDomainViewSet
from copilot_admin.usage.api import AbuseCaseViewSet, LimitsView, UsageExportView, UsageView, WebhookViewSet

tenant_router = SimpleRouter()
tenant_router.register("users", UserViewSet, basename="users")
tenant_router.register("roles", RoleViewSet, basename="roles")
tenant_router.register("companies", CompanyViewSet, basename="companies")
tenant_router.register("abuse-cases", AbuseCaseViewSet, basename="abuse-cases")
tenant_router.register("audit", AuditEntryViewSet, basename="audit")
tenant_router.register("webhooks", WebhookViewSet, basename="webhooks")
tenant_router.register("access-reviews", ReviewCampaignViewSet, basename="access-reviews")
tenant_router.register("integration-keys", IntegrationKeyViewSet, basename="integration-keys")

platform_router = SimpleRouter()
platform_router.register("tenants", PlatformTenantViewSet, basename="platform-tenants")
platform_router.register("deployments", PlatformDeploymentViewSet, basename="platform-deployments")
platform_router.register("abuse-cases", PlatformAbuseCaseViewSet, basename="platform-abuse-cases")
platform_router.register("sso-domains", PlatformSsoDomainViewSet, basename="platform-sso-domains")

app_name = "api"

urlpatterns = [
    # First: the copilot call's routes (`tenants/<slug>/copilot/<feature>/`, no other route's), the
    # most frequent request, resolved without trying the others.
    *copilot_api_urlpatterns,
    path("auth/token/", AuthTokenView.as_view(), name="auth-token"),
    # Before the router: `audit/checkpoints/` is not an entry id.
    path("tenants/<slug:tenant_slug>/audit/checkpoints/", AuditCheckpointsView.as_view(), name="audit-checkpoints"),
    path("tenants/<slug:tenant_slug>/access-review/", AccessReviewView.as_view(), name="access-review"),
    path("tenants/<slug:tenant_slug>/data-exchange/", DataExchangeView.as_view(), name="data-exchange"),
    path("tenants/<slug:tenant_slug>/", include(tenant_router.urls)),
    path("tenants/<slug:tenant_slug>/settings/", CopilotSettingsView.as_view(), name="settings"),
    path("tenants/<slug:tenant_slug>/limits/", LimitsView.as_view(), name="limits"),
    path("tenants/<slug:tenant_slug>/usage/", UsageView.as_view(), name="usage"),
    path("tenants/<slug:tenant_slug>/usage/export/", UsageExportView.as_view(), name="usage-export"),
    path("tenants/<slug:tenant_slug>/sso/", SsoConfigurationView.as_view(), name="sso"),
    path("platform/limits/", PlatformLimitsView.as_view(), name="platform-limits"),
    path("platform/", include(platform_router.urls)),
]

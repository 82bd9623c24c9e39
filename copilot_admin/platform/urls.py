from django.urls import path

from copilot_admin.platform import limits_views, sso_domain_views, views

app_name = "platform"

urlpatterns = [
    path("", views.TenantListView.as_view(), name="tenants"),
    path("tenants/new/", views.TenantCreateView.as_view(), name="tenant_create"),
    path("tenants/<int:pk>/", views.TenantEditView.as_view(), name="tenant_edit"),
    path("tenants/<int:pk>/suspend/", views.TenantSuspendView.as_view(), name="tenant_suspend"),
    path("tenants/<int:pk>/overview/", views.TenantOverviewView.as_view(), name="tenant_overview"),
    path("tenants/<int:pk>/administrators/", views.TenantAdminInviteView.as_view(), name="tenant_admin_invite"),
    path(
        "tenants/<int:pk>/invitations/<int:membership_pk>/resend/",
        views.TenantInvitationResendView.as_view(),
        name="tenant_invitation_resend",
    ),
    path("deployments/", views.DeploymentListView.as_view(), name="deployments"),
    path("deployments/new/", views.DeploymentCreateView.as_view(), name="deployment_create"),
    path("deployments/<int:pk>/", views.DeploymentEditView.as_view(), name="deployment_edit"),
    path("deployments/<int:pk>/deactivate/", views.DeploymentDeactivateView.as_view(), name="deployment_deactivate"),
    path("limits/", limits_views.PlatformLimitsView.as_view(), name="limits"),
    path("abuse-cases/", limits_views.PlatformAbuseCaseListView.as_view(), name="abuse_cases"),
    path(
        "abuse-cases/<int:pk>/reinstate/",
        limits_views.PlatformAbuseCaseReinstateView.as_view(),
        name="abuse_case_reinstate",
    ),
    path("sso-domains/", sso_domain_views.SsoDomainListView.as_view(), name="sso_domains"),
    path("sso-domains/<int:pk>/decide/", sso_domain_views.SsoDomainDecideView.as_view(), name="sso_domain_decide"),
]

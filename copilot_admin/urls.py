from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from copilot_admin.directory.forms import EmailAuthenticationForm
from copilot_admin.directory.views import HomeView, InvitationAcceptView, PasswordSetView, ProfileView
from copilot_admin.identity.sso_views import LoginView, SsoCallbackView, SsoStartView

urlpatterns = [
    # First: the API's paths overlap no page's, and the copilot call (every technician's request)
    # is resolved without trying the pages' patterns before it.
    path("api/v1/", include("copilot_admin.api_urls")),
    path("", HomeView.as_view(), name="home"),
    path(
        "login/",
        # Identity's login view: e-mail first, then single sign-on or the password; a user with a
        # second factor is not logged in until it passes it (sso_views.LoginView < MfaLoginView).
        LoginView.as_view(authentication_form=EmailAuthenticationForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("login/sso/", SsoStartView.as_view(), name="sso_login_start"),
    path("login/sso/callback/", SsoCallbackView.as_view(), name="sso_login_callback"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("copilot_admin.identity.mfa_urls")),
    path("password/set/<uidb64>/<token>/", PasswordSetView.as_view(), name="password_reset_confirm"),
    path("account/", ProfileView.as_view(), name="profile"),
    path("invitations/<str:token>/", InvitationAcceptView.as_view(), name="invitation_accept"),
    path("t/<slug:tenant_slug>/", include("copilot_admin.directory.urls")),
    path("t/<slug:tenant_slug>/", include("copilot_admin.access.urls")),
    path("t/<slug:tenant_slug>/audit/", include("copilot_admin.compliance.urls")),
    path("t/<slug:tenant_slug>/compliance/", include("copilot_admin.compliance.evidence_urls")),
    path("t/<slug:tenant_slug>/", include("copilot_admin.regions.urls")),
    path("t/<slug:tenant_slug>/", include("copilot_admin.copilot.urls")),
    path("t/<slug:tenant_slug>/", include("copilot_admin.usage.urls")),
    path("t/<slug:tenant_slug>/", include("copilot_admin.identity.urls")),
    path("platform/", include("copilot_admin.platform.urls")),
    path("audit/", include("copilot_admin.compliance.platform_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script as a file of its own (`?script`): no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
]

if settings.COPILOT_SIMULATOR:
    from copilot_admin.simulator.views import simulator_view

    # Development only, when COPILOT_SIMULATOR is set (`make run`): the demo deployments call this.
    urlpatterns.append(re_path(r"^_simulator/(?P<path>.*)$", simulator_view, name="copilot-simulator"))

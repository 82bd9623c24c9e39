"""Tenant pages of the identity room (mounted under /t/<slug>/)."""

from django.urls import path

from copilot_admin.identity import sso_views, views

app_name = "identity"

urlpatterns = [
    path("sso/", sso_views.SsoConfigurationPageView.as_view(), name="sso"),
    path("integration-keys/", views.IntegrationKeyListView.as_view(), name="integration_keys"),
]

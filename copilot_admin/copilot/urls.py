"""Copilot routes: the API (included under /api/v1/ by copilot_admin.api_urls), one route per
declared feature, and the playground and settings pages."""

from django.urls import path

from copilot_admin.copilot import api, views
from copilot_admin.copilot.features import features

app_name = "copilot"

api_urlpatterns = [
    path(f"tenants/<slug:tenant_slug>/copilot/{feature.slug}/", api.feature_view(feature).as_view(),
         name=f"copilot-{feature.slug}")
    for feature in features()
]

urlpatterns = [
    path("copilot/", views.PlaygroundView.as_view(), name="playground"),
    path("settings/", views.CopilotSettingsPageView.as_view(), name="settings"),
]

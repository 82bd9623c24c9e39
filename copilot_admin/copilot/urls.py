"""Copilot routes: the API (included under /api/v1/ by copilot_admin.api_urls) and the playground page."""

from django.urls import path

from copilot_admin.copilot import api, views

app_name = "copilot"

api_urlpatterns = [
    path("tenants/<slug:tenant_slug>/copilot/summarize/", api.SummarizeView.as_view(), name="copilot-summarize"),
    path("tenants/<slug:tenant_slug>/copilot/time-entry/", api.TimeEntryView.as_view(), name="copilot-time-entry"),
    path("tenants/<slug:tenant_slug>/copilot/prioritize/", api.PrioritizeView.as_view(), name="copilot-prioritize"),
]

urlpatterns = [
    path("copilot/", views.PlaygroundView.as_view(), name="playground"),
    path("settings/", views.CopilotSettingsPageView.as_view(), name="settings"),
]

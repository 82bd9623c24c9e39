"""The audit log across tenants, for platform auditors and operators."""

from django.urls import path

from copilot_admin.compliance import views

app_name = "platform_audit"

urlpatterns = [
    path("", views.PlatformAuditLogView.as_view(), name="list"),
    path("export/", views.PlatformAuditExportView.as_view(), name="export"),
]

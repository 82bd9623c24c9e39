from django.urls import path

from copilot_admin.compliance import views

app_name = "audit"

urlpatterns = [
    path("", views.AuditLogView.as_view(), name="list"),
]

from django.urls import path

from copilot_admin.compliance import views

app_name = "audit"

urlpatterns = [
    path("", views.AuditLogView.as_view(), name="list"),
    path("<int:pk>/", views.AuditEntryView.as_view(), name="entry"),
]

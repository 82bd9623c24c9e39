from django.urls import path

from copilot_admin.platform import views

app_name = "platform"

urlpatterns = [
    path("", views.TenantListView.as_view(), name="tenants"),
    path("tenants/new/", views.TenantCreateView.as_view(), name="tenant_create"),
    path("tenants/<int:pk>/", views.TenantEditView.as_view(), name="tenant_edit"),
]

from django.urls import path

from copilot_admin.identity import views

app_name = "identity"

urlpatterns = [
    path("integration-keys/", views.IntegrationKeyListView.as_view(), name="integration_keys"),
]

from django.urls import path

from copilot_admin.access import views

app_name = "access"

urlpatterns = [
    path("roles/", views.RoleListView.as_view(), name="roles"),
    path("roles/matrix/", views.RoleMatrixView.as_view(), name="role_matrix"),
    path("roles/new/", views.RoleCreateView.as_view(), name="role_create"),
    path("roles/<int:pk>/", views.RoleEditView.as_view(), name="role_edit"),
    path("roles/<int:pk>/deactivate/", views.RoleDeactivateView.as_view(), name="role_deactivate"),
    path("roles/<int:pk>/delete/", views.RoleDeleteView.as_view(), name="role_delete"),
]

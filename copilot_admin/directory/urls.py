from django.urls import path

from copilot_admin.directory import views

app_name = "directory"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("users/", views.UserListView.as_view(), name="users"),
    path("users/new/", views.UserCreateView.as_view(), name="user_create"),
    path("users/<int:pk>/", views.UserEditView.as_view(), name="user_edit"),
    path("users/<int:pk>/deactivate/", views.UserDeactivateView.as_view(), name="user_deactivate"),
    path("users/<int:pk>/revoke/", views.UserRevokeView.as_view(), name="user_revoke"),
    path("users/bulk/deactivate/", views.UserBulkView.as_view(action="deactivate"), name="users_bulk_deactivate"),
    path("users/bulk/role/", views.UserBulkView.as_view(action="role"), name="users_bulk_role"),
    path("users/bulk/resend/", views.UserBulkView.as_view(action="resend"), name="users_bulk_resend"),
    path("users/bulk/revoke/", views.UserBulkView.as_view(action="revoke"), name="users_bulk_revoke"),
    path("companies/", views.CompanyListView.as_view(), name="companies"),
    path("companies/new/", views.CompanyCreateView.as_view(), name="company_create"),
    path("companies/<int:pk>/", views.CompanyEditView.as_view(), name="company_edit"),
    path("companies/<int:pk>/deactivate/", views.CompanyDeactivateView.as_view(), name="company_deactivate"),
    path("companies/<int:pk>/reactivate/", views.CompanyReactivateView.as_view(), name="company_reactivate"),
    path("companies/<int:pk>/delete/", views.CompanyDeleteView.as_view(), name="company_delete"),
    path("security/", views.LoginSecurityView.as_view(), name="login_security"),
]

from django.urls import path

from copilot_admin.usage import views

app_name = "usage"

urlpatterns = [
    path("usage/", views.UsageDashboardView.as_view(), name="dashboard"),
    path("usage/limits/", views.LimitsPageView.as_view(), name="limits"),
    path("usage/abuse-cases/", views.AbuseCaseListView.as_view(), name="abuse_cases"),
    path("usage/abuse-cases/<int:pk>/", views.AbuseCaseDetailView.as_view(), name="abuse_case"),
    path("usage/abuse-cases/<int:pk>/decide/", views.AbuseCaseResolveView.as_view(), name="abuse_case_resolve"),
    path("usage/notifications/", views.NotificationListView.as_view(), name="notifications"),
]

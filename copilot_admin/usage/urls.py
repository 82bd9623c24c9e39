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
    path("usage/webhooks/", views.WebhookListView.as_view(), name="webhooks"),
    path("usage/webhooks/new/", views.WebhookCreateView.as_view(), name="webhook_create"),
    path("usage/webhooks/<int:pk>/", views.WebhookEditView.as_view(), name="webhook_edit"),
    path("usage/webhooks/<int:pk>/test/", views.WebhookTestView.as_view(), name="webhook_test"),
    path("usage/webhooks/<int:pk>/delete/", views.WebhookDeleteView.as_view(), name="webhook_delete"),
    path("usage/webhooks/<int:pk>/deliveries/", views.WebhookDeliveryListView.as_view(), name="webhook_deliveries"),
]

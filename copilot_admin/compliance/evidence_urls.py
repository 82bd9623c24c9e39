"""The auditor's evidence pages of one tenant (under /t/<slug>/compliance/)."""

from django.urls import path

from copilot_admin.compliance import evidence_views

app_name = "compliance"

urlpatterns = [
    path("checkpoints/", evidence_views.CheckpointsPage.as_view(), name="checkpoints"),
    path("access-review/", evidence_views.AccessReviewPage.as_view(), name="access_review"),
    path("data-exchange/", evidence_views.DataExchangePage.as_view(), name="data_exchange"),
    path("access-reviews/", evidence_views.ReviewsPage.as_view(), name="reviews"),
    path("access-reviews/<int:pk>/", evidence_views.ReviewPage.as_view(), name="review"),
]

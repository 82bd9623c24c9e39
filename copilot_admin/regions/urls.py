from django.urls import path

from copilot_admin.regions import views

app_name = "regions"

urlpatterns = [
    path("zone/", views.ZoneView.as_view(), name="zone"),
]

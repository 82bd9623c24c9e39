from django.apps import AppConfig


class RegionsConfig(AppConfig):
    name = "copilot_admin.regions"
    label = "regions"

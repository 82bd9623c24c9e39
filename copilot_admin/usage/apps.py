from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "copilot_admin.usage"
    label = "usage"

    def ready(self):
        # The limits item of the tenant's setup checklist (access/setup_checks.py) and the
        # copilot-access badges on members (access/member_badges.py).
        from copilot_admin.usage import member_badges, setup_checks

        setup_checks.register()
        member_badges.register()

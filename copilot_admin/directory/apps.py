from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    """The tenant's people and customers: users, memberships, invitations, client companies,
    co-management and login security (services, pages, API)."""

    name = "copilot_admin.directory"
    label = "directory"

    def ready(self):
        from copilot_admin.directory import (
            login_guard,  # noqa: F401  (connects the failed-login counter)
            setup_checks,
        )

        setup_checks.register()

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from tenants import versioning
        from tenants.sessions import session_mark_login

        versioning.register()

        user_logged_in.connect(session_mark_login, dispatch_uid="tenants_session_login_at")

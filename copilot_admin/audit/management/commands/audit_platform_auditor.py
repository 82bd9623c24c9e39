"""`python manage.py audit_platform_auditor grant|revoke <email>`: let a user read every
tenant's audit log (read-only), or stop it. Recorded in the platform chain (actor: system)."""

from django.core.management.base import BaseCommand, CommandError

from copilot_admin.audit.services import platform_auditor_grant, platform_auditor_revoke
from tenants.models import User


class Command(BaseCommand):
    help = "Grant or revoke read access to every tenant's audit log."

    def add_arguments(self, parser):
        parser.add_argument("operation", choices=["grant", "revoke"])
        parser.add_argument("email")

    def handle(self, *args, operation, email, **options):
        user = User.objects.filter(email=email.strip().lower()).first()
        if user is None:
            raise CommandError(f"No user {email!r}.")
        (platform_auditor_grant if operation == "grant" else platform_auditor_revoke)(actor=None, user=user)
        self.stdout.write(f"{operation}ed platform audit access for {user.email}")

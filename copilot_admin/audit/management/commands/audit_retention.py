"""`python manage.py audit_retention --tenant SLUG [--days N | --default]`: show or set how
long a tenant's audit entries are kept (never below AUDIT_RETENTION_MIN_DAYS). A change is
recorded in the tenant's log (actor: system)."""

from django.core.management.base import BaseCommand, CommandError

from copilot_admin.audit.services import audit_retention_days, audit_retention_set
from copilot_admin.core.errors import ApplicationError
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Show or set a tenant's audit retention period in days."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="SLUG", required=True)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--days", type=int, help="Keep entries this many days.")
        group.add_argument("--default", action="store_true", help="Back to the platform default.")

    def handle(self, *args, tenant, days=None, default=False, **options):
        selected = Tenant.objects.filter(slug=tenant).first()
        if selected is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        if days is not None or default:
            try:
                audit_retention_set(actor=None, tenant=selected, days=None if default else days)
            except ApplicationError as error:
                raise CommandError(error.message) from error
        self.stdout.write(f"{selected.slug}: audit entries kept {audit_retention_days(tenant_id=selected.pk)} days")

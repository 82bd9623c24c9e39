"""`python manage.py audit_verify [--tenant slug] [--no-seal]`: check the audit log's hash chains.

Seals what is committed first (unless `--no-seal`), so every entry recorded so far is checked.
Prints one line per chain: for a broken chain, the first broken link; entries still unsealed
are reported. Exits non-zero when any chain is broken."""

from django.core.management.base import BaseCommand, CommandError

from copilot_admin.audit.selectors import audit_chain_verify, audit_chains_to_verify
from copilot_admin.audit.services import EVERY_CHAIN, audit_seal
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify the audit log's hash chains (every tenant's and the platform's, or one tenant's)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="SLUG", help="Verify only this tenant's chain.")
        parser.add_argument("--no-seal", action="store_true", help="Check the sealed entries only; seal nothing.")

    def handle(self, *args, tenant=None, no_seal=False, **options):
        selected = None
        if tenant:
            selected = Tenant.objects.filter(slug=tenant).first()
            if selected is None:
                raise CommandError(f"No tenant with slug {tenant!r}.")
        if not no_seal:
            audit_seal(tenant_id=selected.pk if selected else EVERY_CHAIN)
        broken = 0
        for tenant_id in audit_chains_to_verify(tenant=selected):
            report = audit_chain_verify(tenant_id=tenant_id)
            pending = f"; {report.unsealed} not sealed yet" if report.unsealed else ""
            if report.ok:
                self.stdout.write(f"ok      {report.chain}: {report.checked} entries verified{pending}")
                continue
            broken += 1
            where = f"entry {report.broken_seq}" + (f" (id {report.broken_entry_id})" if report.broken_entry_id else "")
            self.stdout.write(self.style.ERROR(
                f"BROKEN  {report.chain}: first broken link at {where}: {report.reason}; "
                f"{report.checked} entries before it verified{pending}"
            ))
        if broken:
            raise CommandError(f"{broken} audit chain(s) broken.", returncode=2)

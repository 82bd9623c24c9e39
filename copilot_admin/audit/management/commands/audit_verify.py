"""`python manage.py audit_verify [--tenant slug] [--no-seal] [--checkpoints FILE]`: check the audit log's hash chains.

Seals what is committed first (unless `--no-seal`), so every entry recorded so far is checked.
Prints one line per chain: for a broken chain, the first broken link; entries still unsealed
are reported. With `--checkpoints FILE` (a tenant's checkpoints as downloaded from
`audit/checkpoints/`, kept outside the database) the chain is also checked against them: each
signature, and that the chain still holds each checkpoint's entry with its hash. Exits non-zero
when any chain is broken or a checkpoint fails."""

from django.core.management.base import BaseCommand, CommandError

from copilot_admin.audit.checkpoints import (
    CheckpointFileError,
    chain_tenant_id,
    checkpoints_load,
    checkpoints_verify,
)
from copilot_admin.audit.models import chain_key
from copilot_admin.audit.selectors import audit_chain_verify, audit_chains_to_verify
from copilot_admin.audit.services import EVERY_CHAIN, audit_seal
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify the audit log's hash chains (every tenant's and the platform's, or one tenant's)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="SLUG", help="Verify only this tenant's chain.")
        parser.add_argument("--no-seal", action="store_true", help="Check the sealed entries only; seal nothing.")
        parser.add_argument(
            "--checkpoints", metavar="FILE",
            help="Also check the chain against signed checkpoints saved elsewhere (the JSON of audit/checkpoints/).",
        )

    def handle(self, *args, tenant=None, no_seal=False, checkpoints=None, **options):
        selected = None
        if tenant:
            selected = Tenant.objects.filter(slug=tenant).first()
            if selected is None:
                raise CommandError(f"No tenant with slug {tenant!r}.")
        saved = self._load_checkpoints(checkpoints, selected) if checkpoints else None
        if saved is not None and selected is None and chain_tenant_id(saved[0]) is not None:
            # The file names its chain: verify that one (the others are not what it vouches for).
            selected = Tenant.objects.filter(pk=chain_tenant_id(saved[0])).first()
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
        if saved is not None:
            report = checkpoints_verify(chain=saved[0], checkpoints=saved[1])
            if report.ok:
                purged = f"; {report.purged} before the retention checkpoint" if report.purged else ""
                self.stdout.write(f"ok      {report.chain}: {report.checked} checkpoints match the chain{purged}")
            else:
                broken += 1
                for problem in report.problems:
                    self.stdout.write(self.style.ERROR(f"BROKEN  {report.chain}: {problem}"))
        if broken:
            raise CommandError(f"{broken} audit chain(s) broken.", returncode=2)

    def _load_checkpoints(self, path, selected) -> tuple[str, list[dict]]:
        try:
            with open(path, encoding="utf-8") as handle:
                chain, items = checkpoints_load(handle.read())
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        except CheckpointFileError as exc:
            raise CommandError(f"{path}: {exc}.") from None
        if selected is not None and chain != chain_key(selected.pk):
            raise CommandError(f"{path} holds the checkpoints of {chain}, not of tenant {selected.slug!r}.")
        return chain, items

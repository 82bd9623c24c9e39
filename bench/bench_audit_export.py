"""Benchmark of the audit log export; prints one JSON object.

A tenant's chain is filled with 20,000 entries and the export API
(`GET /api/v1/tenants/<slug>/audit/export/`) is consumed in-process as a client would read it;
then the chain grows to 200,000 entries and the export runs again. For each size:

- entries/s and MB/s of the JSON Lines and CSV exports (untraced runs), and the same rows
  fetched raw from the database (`values_list().iterator()`) as the baseline: the ratio
  export/raw is the cost of formatting and streaming;
- peak memory while streaming (tracemalloc, a separate traced run) and the process's
  maximum RSS. Constant memory means the peak at 200,000 is about the peak at 20,000
  (`peak_ratio_large_to_small` near 1), while the bytes streamed grow tenfold;
- entries/s of `audit_verify` over the whole chain.

Database: a temporary SQLite file (deleted afterwards), or PostgreSQL when
`BENCH_AUDIT_DATABASE_URL` names a database whose name contains "bench" (created fresh,
dropped afterwards). Runs in about two minutes (the traced runs are slow).
"""

import json
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMALL, LARGE = 20_000, 200_000
SQLITE_DIRECTORY = Path(tempfile.mkdtemp(prefix="bench-audit-"))
POSTGRES_URL = os.environ.get("BENCH_AUDIT_DATABASE_URL", "")
if POSTGRES_URL and "bench" not in urlsplit(POSTGRES_URL).path:
    sys.exit("BENCH_AUDIT_DATABASE_URL must name a database containing 'bench' (it is dropped afterwards).")
os.environ["DATABASE_URL"] = POSTGRES_URL or f"sqlite:///{SQLITE_DIRECTORY / 'audit.sqlite3'}"
os.environ["DJANGO_DEBUG"] = "false"  # no query log growing with the export
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def _postgres_database(action: str) -> None:
    import psycopg

    parts = urlsplit(POSTGRES_URL)
    name = parts.path.strip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if action == "create":
            admin.execute(f'CREATE DATABASE "{name}"')


if POSTGRES_URL:
    _postgres_database("create")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from knox.models import AuthToken  # noqa: E402

from copilot_admin.audit.chain import entry_hash  # noqa: E402
from copilot_admin.audit.models import AuditChainHead, AuditEntry, chain_key  # noqa: E402
from copilot_admin.audit.selectors import audit_chain_verify  # noqa: E402
from tenants.models import Membership, Plan, Tenant, User  # noqa: E402


def setup_tenant() -> tuple[Tenant, str]:
    from django.utils import timezone

    from copilot_admin.access.models import SecurityRole
    from copilot_admin.access.services import roles_seed_system
    from copilot_admin.regions.models import DataZone

    call_command("migrate", verbosity=0)
    tenant = Tenant.objects.create(name="Bench MSP", slug="bench", plan=Plan.ULTIMATE, zone=DataZone.objects.get(code="us"))
    roles_seed_system(actor=None, tenant=tenant)
    user = User.objects.create_user("auditor@bench.example", "bench-password-0123")
    role = SecurityRole.objects.for_tenant(tenant).get(name="Compliance Auditor")
    Membership.objects.for_tenant(tenant).create(tenant=tenant, user=user, role=role, accepted_at=timezone.now())
    _, token = AuthToken.objects.create(user=user)
    return tenant, token


def fill(tenant: Tenant, count: int) -> float:
    """Append `count` sealed entries shaped like real ones (a membership change with its diff)."""
    from copilot_admin.audit.services import audit_seal

    audit_seal(tenant_id=tenant.pk)  # the setup's own entries first; the head exists from then on
    started = time.perf_counter()
    done = 0
    while done < count:
        size = min(5000, count - done)
        with transaction.atomic():
            head = AuditChainHead.objects.select_for_update().get(chain=chain_key(tenant.pk))
            moment, previous, rows = timezone.now(), head.hash, []
            for i in range(1, size + 1):
                seq = head.seq + i
                fields = {
                    "tenant_id": tenant.pk, "seq": seq, "created_at": moment + timedelta(microseconds=i),
                    "actor_id": 1, "actor_email": "admin@bench.example", "actor_type": "user",
                    "remote_addr": "192.0.2.44", "action": "membership.update", "object_type": "membership",
                    "object_id": str(seq % 5000), "object_repr": f"user{seq % 5000}@bench.example @ {tenant.pk}",
                    "changes": {"role": ["Technician", "Tenant Administrator"], "is_active": ["True", "False"]},
                    "metadata": {"via": "api", "log_entry": seq}, "outcome": "success",
                    "correlation_id": f"{seq:032x}", "prev_hash": previous,
                }
                fields["hash"] = previous = entry_hash(fields)
                rows.append(AuditEntry(**fields))
            AuditEntry.unscoped_objects.bulk_create(rows)
            head.seq, head.hash = head.seq + size, previous
            head.save(update_fields=["seq", "hash"])
        done += size
    return round(time.perf_counter() - started, 2)


def consume(client: Client, token: str, fmt: str, *, traced: bool) -> dict:
    response = client.get("/api/v1/tenants/bench/audit/export/", {"format": fmt}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200 and response.streaming, response.status_code
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    total = chunks = lines = 0
    for chunk in response.streaming_content:
        total, chunks, lines = total + len(chunk), chunks + 1, lines + chunk.count(b"\n")
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if traced else None
    if traced:
        tracemalloc.stop()
    entries = lines - (1 if fmt == "csv" else 0)  # the CSV header line
    result = {"entries": entries, "bytes": total, "chunks": chunks, "seconds": round(seconds, 3)}
    if traced:
        result["peak_traced_bytes"] = peak
    else:
        result["entries_per_second"] = round(entries / seconds)
        result["megabytes_per_second"] = round(total / seconds / 1e6, 1)
    return result


def raw_fetch(tenant: Tenant) -> dict:
    started = time.perf_counter()
    count = sum(1 for _ in AuditEntry.objects.for_tenant(tenant).order_by("seq").values_list().iterator(chunk_size=2000))
    seconds = time.perf_counter() - started
    return {"entries": count, "seconds": round(seconds, 3), "entries_per_second": round(count / seconds)}


def measure(client: Client, token: str, tenant: Tenant) -> dict:
    jsonl = consume(client, token, "jsonl", traced=False)
    csv = consume(client, token, "csv", traced=False)
    traced = consume(client, token, "jsonl", traced=True)
    raw = raw_fetch(tenant)
    return {
        "jsonl": jsonl, "csv": csv, "raw_fetch": raw, "jsonl_traced": traced,
        "jsonl_rate_vs_raw_fetch": round(jsonl["entries_per_second"] / raw["entries_per_second"], 3),
        "max_rss_megabytes_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    started = time.perf_counter()
    tenant, token = setup_tenant()
    client = Client()
    fill_small = fill(tenant, SMALL)
    small = measure(client, token, tenant)
    fill_large = fill(tenant, LARGE - AuditEntry.objects.for_tenant(tenant).count())
    large = measure(client, token, tenant)
    verify_started = time.perf_counter()
    report = audit_chain_verify(tenant_id=tenant.pk)
    verify_seconds = time.perf_counter() - verify_started
    result = {
        "benchmark": "audit_export",
        "engine": connections["default"].vendor,
        "fill_seconds": {"small": fill_small, "large": fill_large},
        "small": small,
        "large": large,
        "peak_ratio_large_to_small": round(large["jsonl_traced"]["peak_traced_bytes"]
                                           / small["jsonl_traced"]["peak_traced_bytes"], 3),
        "bytes_ratio_large_to_small": round(large["jsonl_traced"]["bytes"] / small["jsonl_traced"]["bytes"], 2),
        "verify": {"ok": report.ok, "entries": report.checked,
                   "entries_per_second": round(report.checked / verify_seconds)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    try:
        main()
    finally:
        connections.close_all()
        shutil.rmtree(SQLITE_DIRECTORY, ignore_errors=True)
        if POSTGRES_URL:
            _postgres_database("drop")

"""Recording and sealing: an entry is written in the transaction of its change (no change
commits without it), appended without any lock, and sealed later into its chain by the
sealer (the periodic task, or on demand), in the order entries committed. PostgreSQL refuses
every UPDATE of an entry but the one that seals it, and concurrent writers and sealers
always leave one unbroken chain."""

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction

from copilot_admin.audit.models import AuditChainHead, AuditEntry
from copilot_admin.audit.selectors import audit_chain_verify
from copilot_admin.audit.services import PURGE_SETTING, audit_event_record, audit_seal, entry_append
from copilot_admin.audit.tasks import audit_seal_pending
from copilot_admin.directory import services as directory
from tenants.models import ClientCompany
from tests.audit.conftest import entries
from tests.conftest import require_service

# Chains of no tenant row (entries need none), for rows that threads commit.
CHAINS = (987_661, 987_662)


def unsealed(tenant_id):
    return AuditEntry.objects.for_chain(tenant_id).filter(seq__isnull=True)


# -- in the change's transaction -----------------------------------------------------------------

@pytest.fixture
def entry_writes_fail():
    """The audit table refuses every insert (as a full disk or a revoked grant would): the
    database connection fails any statement that inserts into it, however it was built."""
    table = AuditEntry._meta.db_table

    def refuse(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("INSERT") and f'"{table}"' in sql.split("(", 1)[0]:
            raise DatabaseError("audit entry could not be written")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse):
        yield


def test_a_change_cannot_commit_without_its_entry(tenant_a, entry_writes_fail):
    admin, company = tenant_a.members["admin"], tenant_a.companies[0]
    with pytest.raises(DatabaseError):
        directory.company_update(actor=admin, company=company, name="Renamed without a trace")
    with pytest.raises(DatabaseError):
        directory.company_create(actor=admin, name="Created without a trace")
    company.refresh_from_db()
    assert company.name == "Alpha MSP Client One"
    assert not ClientCompany.objects.for_tenant(tenant_a.tenant).filter(name__contains="without a trace").exists()


def test_a_change_through_the_api_is_not_answered_when_its_entry_fails(tenant_a, entry_writes_fail):
    from tests.conftest import api_client_for

    api = api_client_for(tenant_a.members["admin"].user)
    api.raise_request_exception = False
    company = tenant_a.companies[0]
    response = api.patch(f"/api/v1/tenants/alpha/companies/{company.pk}/", {"name": "Lost"}, format="json")
    assert response.status_code == 500
    company.refresh_from_db()
    assert company.name == "Alpha MSP Client One"


def test_entries_are_appended_unsealed_and_the_sealer_chains_them(tenant_a):
    audit_seal()
    first = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.first")
    second = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.second")
    assert (first.seq, first.prev_hash, first.hash) == (None, None, None) and not first.sealed
    report = audit_chain_verify(tenant_id=tenant_a.tenant.pk)
    assert report.ok and report.unsealed == 2
    assert audit_seal(tenant_id=tenant_a.tenant.pk) == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.seq == first.seq + 1 and second.prev_hash == first.hash and first.sealed
    assert audit_seal(tenant_id=tenant_a.tenant.pk) == 0  # nothing left: safe to run again
    report = audit_chain_verify(tenant_id=tenant_a.tenant.pk)
    assert report.ok and report.unsealed == 0 and report.checked == entries(tenant_a).count()


def test_the_sealer_works_in_batches_and_per_chain(tenant_a, tenant_b):
    audit_seal()
    for i in range(7):
        audit_event_record(tenant=tenant_a.tenant, actor=None, action=f"test.a{i}")
    audit_event_record(tenant=tenant_b.tenant, actor=None, action="test.b")
    audit_event_record(tenant=None, actor=None, action="test.platform")
    assert audit_seal(tenant_id=tenant_a.tenant.pk, batch_size=3) == 7
    assert not unsealed(tenant_a.tenant.pk).exists() and unsealed(tenant_b.tenant.pk).count() == 1
    assert audit_seal(tenant_id=None) == 1 and not unsealed(None).exists()
    assert audit_seal() == 1  # every chain: bravo's
    assert all(audit_chain_verify(tenant_id=t).ok for t in (None, tenant_a.tenant.pk, tenant_b.tenant.pk))


def test_a_batch_of_seals_is_one_update_whose_text_does_not_grow_with_the_batch(tenant_a):
    """The seals of a batch go out as one UPDATE; on PostgreSQL joined to the batch as arrays,
    so its SQL is the same for 3 entries as for 30 (`bulk_update` wrote a CASE per row and field:
    most of the sealer's CPU at hundreds of calls a second, docs/SCALING.md)."""
    audit_seal()
    sizes = []
    for count in (3, 30):
        for i in range(count):
            audit_event_record(tenant=tenant_a.tenant, actor=None, action=f"test.batch{i}")
        updates = []

        def wrapper(execute, sql, params, many, context, updates=updates):
            if sql.lstrip().upper().startswith("UPDATE") and "audit_auditentry" in sql:
                updates.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(wrapper):
            assert audit_seal(tenant_id=tenant_a.tenant.pk) == count
        assert len(updates) == 1, updates
        sizes.append(len(updates[0]))
    if connection.vendor == "postgresql":
        assert sizes[0] == sizes[1], sizes
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok


def test_verify_seals_first_and_reports_what_is_not_sealed(tenant_a):
    audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.pending")
    out = StringIO()
    call_command("audit_verify", "--tenant", "alpha", "--no-seal", stdout=out)
    assert "not sealed yet" in out.getvalue()
    out = StringIO()
    call_command("audit_verify", "--tenant", "alpha", stdout=out)
    assert f"{entries(tenant_a).count()} entries verified" in out.getvalue() and "not sealed" not in out.getvalue()


def test_the_periodic_task_seals_every_chain(tenant_a, tenant_b, settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["audit-seal"]
    assert schedule["task"] == "copilot_admin.audit.tasks.audit_seal_pending" and schedule["schedule"] <= 10
    audit_event_record(tenant=tenant_b.tenant, actor=None, action="test.pending")
    audit_seal_pending.apply()
    assert not AuditEntry.objects.across_tenants().filter(seq__isnull=True).exists()


def test_without_a_broker_entries_are_sealed_right_after_their_commit(tenant_a, settings,
                                                                        django_capture_on_commit_callbacks):
    """`make run` has no beat: each transaction's entries are sealed once it commits."""
    settings.AUDIT_SEAL_ON_COMMIT = True
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            entry = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.committed")
        entry.refresh_from_db()
        assert entry.seq is None  # the test's transaction never commits: the callbacks run below
    entry.refresh_from_db()
    assert entry.sealed and audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok


def test_the_export_seals_what_came_before_it(tenant_a):
    from tests.conftest import api_client_for

    recorded = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.before_export")
    body = b"".join(api_client_for(tenant_a.members["auditor"].user).get(
        "/api/v1/tenants/alpha/audit/export/", {"format": "jsonl"}).streaming_content).decode()
    recorded.refresh_from_db()
    assert recorded.sealed and f'"seq":{recorded.seq},' in body


# -- PostgreSQL: the trigger lets a seal through once, and nothing else --------------------------

@pytest.fixture
def postgresql(db):
    require_service("PostgreSQL", connection.vendor == "postgresql", "the append-only trigger is PostgreSQL's")


def _update(sql, params):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_the_trigger_lets_one_seal_through_and_refuses_content_updates_and_reseals(postgresql, tenant_a):
    audit_seal()
    entry = audit_event_record(tenant=tenant_a.tenant, actor=None, action="test.sealing")
    table = "audit_auditentry"
    with pytest.raises(DatabaseError, match="append-only"):
        _update(f"UPDATE {table} SET object_repr = 'forged' WHERE id = %s", [entry.pk])
    with pytest.raises(DatabaseError, match="append-only"):  # sealing and editing at once
        _update(f"UPDATE {table} SET seq = 999, prev_hash = %s, hash = %s, action = 'forged' WHERE id = %s",
                ["0" * 64, "1" * 64, entry.pk])
    with pytest.raises(DatabaseError, match="append-only"):  # a seal is the three fields together
        _update(f"UPDATE {table} SET seq = 999 WHERE id = %s", [entry.pk])
    audit_seal(tenant_id=tenant_a.tenant.pk)
    entry.refresh_from_db()
    assert entry.sealed
    with pytest.raises(DatabaseError, match="append-only"):  # sealed once: never again
        _update(f"UPDATE {table} SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [entry.seq + 1, "0" * 64, "2" * 64, entry.pk])
    with pytest.raises(DatabaseError, match="append-only"):  # nor unsealed
        _update(f"UPDATE {table} SET seq = NULL, prev_hash = NULL, hash = NULL WHERE id = %s", [entry.pk])
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok


# -- PostgreSQL: threads with connections of their own, committing ---------------------------------

def _in_thread(work):
    """Run `work` on a thread of its own, so on a database connection of its own that commits
    (the test's connection stays inside the test's transaction)."""
    failures, results = [], []

    def run():
        try:
            results.append(work())
        except Exception as error:  # noqa: BLE001  (re-raised in the caller)
            failures.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
    return results[0]


def _remove_committed_rows():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL {PURGE_SETTING} = 'on'")
        cursor.execute("DELETE FROM audit_auditentry WHERE tenant_id = ANY(%s)", [list(CHAINS)])
        cursor.execute("DELETE FROM audit_auditchainhead WHERE tenant_id = ANY(%s)", [list(CHAINS)])


@pytest.fixture
def committing_threads(db, settings):
    """Rows committed by threads are removed afterwards (no flush of the test database: that
    would disturb other tests). Only the sealers these tests run seal (as with a broker)."""
    require_service("PostgreSQL", connection.vendor == "postgresql", "SQLite serializes writers itself")
    settings.AUDIT_SEAL_ON_COMMIT = False
    yield
    _in_thread(_remove_committed_rows)


def _append(tenant_id, object_id=""):
    return entry_append(tenant_id=tenant_id, actor_id=None, actor_email="", actor_type="system",
                        action="test.concurrent", object_id=object_id)


def test_writers_never_wait_for_the_sealers_lock(committing_threads):
    """A writer appends while a sealer holds the chain's lock; a writer that waited for a lock
    would fail here (lock_timeout), not hang."""
    chain = CHAINS[0]
    _in_thread(lambda: (_append(chain, "before"), audit_seal(tenant_id=chain)))
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock():
        with transaction.atomic():
            AuditChainHead.objects.select_for_update().get(tenant_id=chain)
            locked.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=lambda: (hold_the_lock(), connections.close_all()))
    holder.start()
    try:
        assert locked.wait(timeout=30)

        def write():
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                return _append(chain, "while locked").pk

        written = _in_thread(write)
    finally:
        release.set()
        holder.join()
    assert AuditEntry.objects.for_chain(chain).filter(pk=written, seq__isnull=True).exists()


def test_entries_are_sealed_in_commit_order_by_the_task(committing_threads):
    """An entry that commits later is sealed later, also when its id is lower (its transaction
    began first): a sealed chain is never reordered."""
    chain = CHAINS[0]
    appended, commit = threading.Event(), threading.Event()
    slow = {}

    def slow_writer():
        try:
            with transaction.atomic():
                slow["id"] = _append(chain, "began first, commits last").pk
                appended.set()
                commit.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert appended.wait(timeout=30)
        fast = _in_thread(lambda: _append(chain, "began last, commits first").pk)
        _in_thread(lambda: audit_seal_pending.apply().get())
        assert fast > slow["id"]
        assert list(AuditEntry.objects.for_chain(chain).values_list("id", "seq")) == [(fast, 1)]
    finally:
        commit.set()
        thread.join()
    _in_thread(lambda: audit_seal_pending.apply().get())
    chain_rows = list(AuditEntry.objects.for_chain(chain).order_by("seq").values_list("id", "seq"))
    assert chain_rows == [(fast, 1), (slow["id"], 2)]
    assert audit_chain_verify(tenant_id=chain).ok


def test_parallel_writers_and_sealers_leave_one_unbroken_chain(committing_threads):
    """Writers append to two chains (one created by the race) while sealers run over and
    over; once all are done, each chain holds every entry once, numbered 1..n, and verifies.
    Entries sealed while writers were still running keep the place they were given."""
    threads, per_thread, sealers = 10, 15, 3
    start = threading.Barrier(threads + sealers)
    writing_done = threading.Event()
    errors, seen_sealed = [], []

    def write(n):
        try:
            start.wait(timeout=30)
            for i in range(per_thread):
                for chain in CHAINS:
                    with transaction.atomic():
                        _append(chain, f"{n}-{i}")
        except Exception as error:  # noqa: BLE001  (reported below)
            errors.append(error)
        finally:
            connections.close_all()

    def seal():
        try:
            start.wait(timeout=30)
            while not writing_done.is_set():
                for chain in CHAINS:
                    audit_seal(tenant_id=chain, batch_size=7)
                seen_sealed.extend(
                    AuditEntry.objects.for_chain(CHAINS[1]).filter(seq__isnull=False).values_list("id", "seq")
                )
        except Exception as error:  # noqa: BLE001  (reported below)
            errors.append(error)
        finally:
            connections.close_all()

    writers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    sealing = [threading.Thread(target=seal) for _ in range(sealers)]
    for thread in writers + sealing:
        thread.start()
    for thread in writers:
        thread.join()
    writing_done.set()
    for thread in sealing:
        thread.join()
    assert errors == []
    _in_thread(lambda: audit_seal_pending.apply().get())
    expected = threads * per_thread
    for chain in CHAINS:
        seqs = list(AuditEntry.objects.for_chain(chain).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, expected + 1))
        report = audit_chain_verify(tenant_id=chain)
        assert report.ok and report.checked == expected and report.unsealed == 0, report
    final = dict(AuditEntry.objects.for_chain(CHAINS[1]).values_list("id", "seq"))
    assert seen_sealed and all(final[entry_id] == seq for entry_id, seq in seen_sealed)

"""`make bench`'s copilot benchmark: how it counts queries and transactions, and the shape of
its table and JSON (its timings are never asserted; the benchmark itself runs in `make bench`)."""

import json
import threading

import pytest
from django.db import connection, connections, transaction
from django.db.backends.signals import connection_created

from bench import bench_copilot
from tenants.models import Tenant


# serialized_rollback, as every threaded test here: the next one that restores the seeded rows finds
# them gone, not doubled.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_sql_counter_counts_statements_and_transactions_on_every_threads_connection():
    counter = bench_copilot.SqlCounter()
    connection_created.connect(counter.on_connection_created, weak=False)
    try:
        counter.join(connection)
        with counter.one_call() as seen:
            Tenant.objects.count()  # autocommit
            with transaction.atomic():
                Tenant.objects.count()
                with transaction.atomic():  # a savepoint, not a transaction of its own
                    Tenant.objects.count()

            def in_another_thread():  # as the ORM threads of an async call do
                try:
                    with transaction.atomic():
                        Tenant.objects.count()
                finally:
                    connections.close_all()

            thread = threading.Thread(target=in_another_thread)
            thread.start()
            thread.join()
    finally:
        connection_created.disconnect(counter.on_connection_created)
    assert seen["transactions"] == 2
    assert seen["outside_transactions"] == 1
    # 4 counts, plus the savepoint's SAVEPOINT and RELEASE
    assert seen["queries"] == 6
    assert sum("COUNT(*)" in sql for sql in seen["sql"]) == 4


def sample_result() -> dict:
    row = {"in_flight": 100, "upstream_latency_ms": 1000, "window_s": 10.0, "throughput_per_s": 95.5, "ok": 1000,
           "errors": 0, "statuses": [200], "latency_p50_ms": 1003.1, "latency_p99_ms": 1050.0, "calls": 1000}
    return {
        "server": {"command": "Procfile web", "workers": 2, "database": "postgres", "redis": True, "cpus": 2},
        "load_generator": "aiohttp",
        "sequential": {"samples": 300, "api_p50_ms": 12.0, "api_p99_ms": 30.0, "direct_sdk_p50_ms": 4.0,
                       "direct_sdk_p99_ms": 8.0, "direct_sdk_transport": "httpx2", "non_200": 0,
                       "cpu_ms_per_call": 9.5, "overhead_p50_ms": 8.0, "overhead_p99_ms": 22.0},
        "per_call": {"calls": 20, "queries_per_call": 12, "queries_min_max": [12, 12], "transactions_per_call": 1,
                     "statements_outside_transactions_per_call": 4, "sql_of_one_call": ["SELECT 1"]},
        "in_flight": [{"ceiling": dict(row), "upstream_leg": {**row, "processes": 2, "cpu_ms_per_call": 1.9},
                       "portal": {**row, "cpu_ms_per_call": 8.0}}],
    }


def test_the_table_has_a_row_per_path_and_level_and_the_result_is_json():
    result = sample_result()
    table = bench_copilot.table(result)
    lines = table.splitlines()
    assert any(line.startswith("| openai SDK straight to the upstream | 4 | 8 |") for line in lines)
    assert any(line.startswith("| the portal's copilot call | 12 | 30 | 8 | 22 | 12 | 1 (+4 autocommit) | 9.5 |")
               for line in lines)
    assert "| bare upstream (ceiling) | 100 | 95.5 | 0 | 1003.1 | 1050 | - |" in lines
    assert "| the upstream leg alone (openai SDK, no Django) | 100 | 95.5 | 0 | 1003.1 | 1050 | 1.9 |" in lines
    assert "| the portal's copilot call | 100 | 95.5 | 0 | 1003.1 | 1050 | 8 |" in lines
    json.loads(json.dumps({**result, "table": table}))


def test_cpu_per_call_is_the_cpu_time_spent_over_the_calls():
    assert bench_copilot.cpu_ms_per_call(1.0, 1.5, 100) == 5.0
    assert bench_copilot.cpu_ms_per_call(None, 1.5, 100) is None
    assert bench_copilot.cpu_ms_per_call(1.0, 1.5, 0) is None


def test_the_upstream_leg_row_drives_the_portals_upstream_code_from_one_process_per_web_worker(tmp_path, monkeypatch):
    """The row between the ceiling and the portal: `bench/upstream_leg.py` processes (as many as
    web workers) calling the simulator through `azure.acall_with_failover`, started together;
    their calls, errors and CPU time are added up."""
    from copilot_admin.copilot.minimize import minimize_payload
    from copilot_admin.copilot.prompts import render_messages
    from copilot_admin.simulator.server import run_simulator_in_thread

    monkeypatch.setattr(bench_copilot, "WORKDIR", tmp_path)
    monkeypatch.setattr(bench_copilot, "WARMUP_SECONDS", 0.2)
    monkeypatch.setattr(bench_copilot, "WINDOW_SECONDS", 1.0)
    monkeypatch.setattr(bench_copilot, "WORKERS", 2)
    messages = render_messages(feature="summarize", payload=minimize_payload(body=bench_copilot.TICKET))
    with run_simulator_in_thread() as simulator_url:
        row = bench_copilot.upstream_leg(simulator_url, "gpt-4o-mini", "summarize", messages, concurrency=5)
    assert row["processes"] == 2
    assert row["in_flight"] == 5
    assert row["errors"] == 0
    assert row["ok"] >= 2  # every client sends at least one call: its first starts inside the run
    assert row["cpu_ms_per_call"] > 0

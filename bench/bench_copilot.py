"""Benchmark of the copilot call the way users feel it; prints a table (stderr) and one JSON object.

Everything runs on this machine, every number in this one run, so rows compare like with like:
- the server is the Procfile's `web` process (uvicorn, `WEB_CONCURRENCY` workers, default 2) on a
  free loopback port, with `COPILOT_SIMULATOR` off;
- the upstream is the Azure OpenAI simulator in a process of its own (`manage.py run_simulator`);
- the data is `manage.py seed_demo`'s (the technician of `northwind` calls `summarize`), with the
  platform's usage limits lifted through the operator's API (a load test is not abuse);
- the database is PostgreSQL when `DATABASE_URL` names one (a fresh `<name>_bench` database on
  that server, dropped afterwards; `BENCH_DATABASE_URL` names one to use as it is), else a
  temporary SQLite file; the limit counters are in Redis when `REDIS_URL` is set;
- load is generated with aiohttp (the portal and the bare upstream alike).

It measures:
1. Sequential latency, upstream delay 0: `POST /api/v1/tenants/<slug>/copilot/summarize/` against
   the same chat completion (the request body the portal sent, read back from the simulator's
   log) sent straight to the simulator with the openai SDK (`AsyncAzureOpenAI`, its default
   transport), in alternating rounds of ten; p50 and p99 of each and the overhead between them.
2. In flight, upstream delay 1 s: N clients each sending one call after another for
   `BENCH_COPILOT_SECONDS` (after a warm-up), for each N of `BENCH_COPILOT_CONCURRENCY`; calls
   per second completed in that window, errors (any status but 200, or no answer), latency p50
   and p99. The same generator sent straight to the simulator is the ceiling row: the most this
   harness can drive through that upstream on this machine. Between them, the upstream leg
   alone (`bench/upstream_leg.py`): the portal's own upstream code (`azure.acall_with_failover`,
   the openai SDK on aiohttp) driven by as many processes as there are web workers, with no
   Django request, database or Redis: what the SDK leg costs and reaches here by itself.
3. Per call, counted in this process (not guessed): the SQL statements and transactions of one
   call through the same API (Django's async test client, the ASGI path the server takes), with
   `connection.execute_wrapper` on every database connection of the process (the ORM threads
   included); transactions are the commits and rollbacks of `transaction.atomic` blocks, and
   statements run outside them (each its own transaction in the database) are counted apart.
4. CPU milliseconds per call: the CPU time (user + system) of the web processes (uvicorn and its
   workers, from /proc) during a phase, divided by the calls that phase served.

Environment: `BENCH_COPILOT_SAMPLES` (sequential calls of each kind, default 300),
`BENCH_COPILOT_CONCURRENCY` (default "100,500"), `BENCH_COPILOT_SECONDS` (measured window per
level, default 10), `BENCH_COPILOT_COUNTED_CALLS` (default 20), `WEB_CONCURRENCY`,
`DATABASE_URL`, `BENCH_DATABASE_URL`, `REDIS_URL`. `--json PATH` also writes the JSON there.
Runs in about two minutes.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKDIR = Path(tempfile.gettempdir()) / f"bench-copilot-{os.getpid()}"  # made by run(), for SQLite
SAMPLES = int(os.environ.get("BENCH_COPILOT_SAMPLES", "300"))
CONCURRENCY = [int(n) for n in os.environ.get("BENCH_COPILOT_CONCURRENCY", "100,500").split(",") if n.strip()]
WINDOW_SECONDS = float(os.environ.get("BENCH_COPILOT_SECONDS", "10"))
WARMUP_SECONDS = min(2.0, WINDOW_SECONDS)
COUNTED_CALLS = int(os.environ.get("BENCH_COPILOT_COUNTED_CALLS", "20"))
WORKERS = int(os.environ.get("WEB_CONCURRENCY", "2"))
UPSTREAM_DELAY_MS = 1000
API_VERSION = "2024-10-21"
TENANT, FEATURE = "northwind", "summarize"
SIMULATOR_TOKEN = secrets.token_urlsafe(24)
DEMO_PASSWORD = secrets.token_urlsafe(18)
CLIENT_TIMEOUT_SECONDS = 60


def bench_database() -> tuple[str, bool]:
    """The database URL the bench uses, and whether it creates (and drops) it."""
    explicit = os.environ.get("BENCH_DATABASE_URL", "")
    if explicit:
        return explicit, False
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path=f"/{parts.path.strip('/')}_bench")), True
    return f"sqlite:///{WORKDIR / 'bench.sqlite3'}", False


DATABASE_URL, FRESH_DATABASE = bench_database()

SERVER_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COPILOT_", "DATABASE_"))},
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_DEBUG": "false",
    # testserver: the in-process count goes through Django's test client.
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "COPILOT_SIMULATOR": "false",
    "COPILOT_SIMULATOR_TOKEN": SIMULATOR_TOKEN,  # opens the standalone simulator's control endpoints
    "AZURE_OPENAI_KEY_SIMULATOR": "bench-key-not-a-secret",  # the demo deployments' key variable
    "DEMO_PASSWORD": DEMO_PASSWORD,
    "LOG_LEVEL": "WARNING",
    "PYTHONPATH": str(ROOT),
    # The Procfile names bare commands (uvicorn): the ones of this interpreter's environment.
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
}
# With Redis, the production path: a broker, so calls never seal the audit chain themselves;
# the Procfile's worker and beat (started below) seal it every AUDIT_SEAL_INTERVAL_SECONDS.
# Without Redis (SQLite), entries are sealed when each call's bookkeeping commits.
if os.environ.get("REDIS_URL"):
    SERVER_ENV["CELERY_BROKER_URL"] = os.environ["REDIS_URL"]


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with status {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def web_command(port: int) -> list[str]:
    """The Procfile's `web` line, run as the shell would, on `port`."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = line.split(":", 1)[1].strip().replace("--host 0.0.0.0", "--host 127.0.0.1")
    return ["bash", "-c", f"export PORT={port} WEB_CONCURRENCY={WORKERS}; exec {command}"]


def manage(*args: str, **env: str) -> None:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**SERVER_ENV, **env},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed: {done.stderr[-2000:]}")


def postgres_database(action: str) -> None:
    """Drop the bench database, and create it afresh when `action` is "create"."""
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.strip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if action == "create":
            admin.execute(f'CREATE DATABASE "{name}"')


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_seconds(root: int) -> float | None:
    """User + system CPU seconds of process `root` and its descendants (Linux /proc), or None."""
    stats: dict[int, tuple[int, float]] = {}
    try:
        entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    if root not in stats:
        return None
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(stats[pid][1] for pid in tree)


# --- numbers --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def cpu_ms_per_call(cpu_before: float | None, cpu_after: float | None, calls: int) -> float | None:
    if cpu_before is None or cpu_after is None or not calls:
        return None
    return round((cpu_after - cpu_before) * 1000 / calls, 2)


# --- load generation (aiohttp) --------------------------------------------------------------


def new_session(aiohttp):
    # Idle connections closed before the servers' keep-alive timeout (uvicorn: 5 s).
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=3)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS))


async def post(session, url: str, data: bytes, headers: dict) -> tuple[float, int]:
    """(seconds, status) of one POST; status 0 when no answer came."""
    import aiohttp

    started = time.perf_counter()
    try:
        async with session.post(url, data=data, headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    return time.perf_counter() - started, status


async def run_clients(send: Callable[[], Awaitable[int]], *, concurrency: int, warmup: float,
                      window: float) -> list[tuple[float, float, int]]:
    """`concurrency` clients, each awaiting `send()` (the answer's status, 200 for a success)
    one after another until `warmup` + `window` seconds have passed: every call as (sent,
    answered, status), times in seconds from the window's start (`in_flight_row` reads them)."""
    window_start = time.perf_counter() + warmup
    window_end = window_start + window
    done: list[tuple[float, float, int]] = []

    async def client() -> None:
        while (sent := time.perf_counter()) < window_end:
            status = await send()
            done.append((sent - window_start, time.perf_counter() - window_start, status))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done


def in_flight_row(done: list[tuple[float, float, int]], *, concurrency: int) -> dict:
    """A row of the in-flight table from `run_clients`' calls (of one process or several): the
    calls answered inside the window per second, and the latency of those; every call for the
    errors (any status but 200)."""
    latencies = [answered - sent for sent, answered, _ in done if 0 <= answered < WINDOW_SECONDS] or [0.0]
    in_window = sum(0 <= answered < WINDOW_SECONDS for _, answered, _ in done)
    return {
        "in_flight": concurrency,
        "upstream_latency_ms": UPSTREAM_DELAY_MS,
        "window_s": WINDOW_SECONDS,
        "throughput_per_s": round(in_window / WINDOW_SECONDS, 1),
        "ok": sum(status == 200 for _, _, status in done),
        "errors": sum(status != 200 for _, _, status in done),
        "statuses": sorted({status for _, _, status in done}),
        "latency_p50_ms": ms(percentile(latencies, 0.5)),
        "latency_p99_ms": ms(percentile(latencies, 0.99)),
        "calls": len(done),
    }


async def closed_loop(session, url: str, data: bytes, headers: dict, *, concurrency: int) -> dict:
    """`concurrency` clients, each sending one request after another until the window ends."""

    async def send() -> int:
        return (await post(session, url, data, headers))[1]

    done = await run_clients(send, concurrency=concurrency, warmup=WARMUP_SECONDS, window=WINDOW_SECONDS)
    return in_flight_row(done, concurrency=concurrency)


def upstream_leg(simulator_url: str, deployment: str, feature: str, messages: list, *, concurrency: int) -> dict:
    """The upstream leg alone (`bench/upstream_leg.py`): one process per web worker, the clients
    split between them, started together, their calls read as `closed_loop` reads its own."""
    shares = [concurrency // WORKERS + (index < concurrency % WORKERS) for index in range(WORKERS)]
    command = [
        sys.executable, "-m", "bench.upstream_leg", "--endpoint", simulator_url, "--deployment", deployment,
        "--api-version", API_VERSION, "--feature", feature, "--messages", json.dumps(messages),
        "--warmup", str(WARMUP_SECONDS), "--seconds", str(WINDOW_SECONDS),
    ]
    outs = [WORKDIR / f"upstream-leg-{concurrency}-{index}.json" for index in range(WORKERS)]
    processes = [
        subprocess.Popen([*command, "--clients", str(share), "--out", str(out)], cwd=ROOT, env=SERVER_ENV,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
        for share, out in zip(shares, outs) if share
    ]
    try:
        for process in processes:
            if json.loads(process.stdout.readline() or "{}").get("ready") is not True:
                raise RuntimeError(f"the upstream leg did not start: {process.stderr.read()[-2000:]}")
        for process in processes:  # go
            process.stdin.write("\n")
            process.stdin.flush()
        for process in processes:
            if json.loads(process.stdout.readline() or "{}").get("done") is not True:
                raise RuntimeError(f"the upstream leg failed: {process.stderr.read()[-2000:]}")
        results = [json.loads(out.read_text()) for out, share in zip(outs, shares) if share]
    finally:
        for process in processes:
            stop(process)
    row = in_flight_row([tuple(call) for result in results for call in result["calls"]], concurrency=concurrency)
    cpu_seconds = sum(result["cpu_seconds"] for result in results)
    return {**row, "processes": len(processes), "cpu_ms_per_call": cpu_ms_per_call(0.0, cpu_seconds, row["calls"])}


# --- queries and transactions, counted in-process -------------------------------------------


class SqlCounter:
    """Counts SQL statements and transactions on every database connection of this process.

    Each thread has its own connection: the counter joins each one as it connects
    (`connection_created`) as an `execute_wrapper`, and counts its `commit`/`rollback` calls,
    which Django makes once per outermost `transaction.atomic` block.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statements: list[tuple[str, bool]] = []  # (sql, inside an atomic block)
        self.transactions = 0

    def __call__(self, execute, sql, params, many, context):
        with self.lock:
            self.statements.append((sql, context["connection"].in_atomic_block))
        return execute(sql, params, many, context)

    def join(self, connection) -> None:
        if self in connection.execute_wrappers:
            return
        connection.execute_wrappers.append(self)
        for name in ("commit", "rollback"):
            original = getattr(connection, name)

            def counted(original=original):
                with self.lock:
                    self.transactions += 1
                return original()

            setattr(connection, name, counted)

    def on_connection_created(self, sender, connection, **kwargs) -> None:
        self.join(connection)

    @contextmanager
    def one_call(self):
        with self.lock:
            first_statement, first_transaction = len(self.statements), self.transactions
        seen: dict = {}
        yield seen
        with self.lock:
            statements = self.statements[first_statement:]
            seen.update(
                queries=len(statements),
                outside_transactions=sum(not atomic for _, atomic in statements),
                transactions=self.transactions - first_transaction,
                sql=[" ".join(sql.split())[:120] for sql, _ in statements],
            )


def count_in_process(token: str, company: str) -> dict:
    """Queries and transactions of one successful call, through the API in this process."""
    import django

    os.environ.update({k: SERVER_ENV[k] for k in ("DATABASE_URL", "DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS",
                                                   "COPILOT_SIMULATOR", "LOG_LEVEL", "AZURE_OPENAI_KEY_SIMULATOR")})
    if SERVER_ENV.get("CELERY_BROKER_URL"):  # as the web processes: sealing is the worker's, not the call's
        os.environ["CELERY_BROKER_URL"] = SERVER_ENV["CELERY_BROKER_URL"]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic here
    django.setup()
    from django.db import connections
    from django.db.backends.signals import connection_created
    from django.test import AsyncClient

    counter = SqlCounter()
    connection_created.connect(counter.on_connection_created, weak=False)
    client = AsyncClient()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/tenants/{TENANT}/copilot/{FEATURE}/"
    body = {"company": company, **TICKET}

    async def calls() -> list[dict]:
        for connection in connections.all():
            counter.join(connection)
        for _ in range(5):  # first calls warm caches and open the ORM threads' connections
            response = await client.post(url, body, content_type="application/json", headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"in-process call answered {response.status_code}: {response.content[:300]!r}")
        counted = []
        for _ in range(COUNTED_CALLS):
            with counter.one_call() as seen:
                response = await client.post(url, body, content_type="application/json", headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"in-process call answered {response.status_code}")
            counted.append(seen)
        return counted

    try:
        counted = asyncio.run(calls())
    finally:
        from copilot_admin.copilot.services import orm_pool_shutdown

        orm_pool_shutdown()
        connections.close_all()
    queries = [call["queries"] for call in counted]
    return {
        "calls": len(counted),
        "queries_per_call": statistics.median(queries),
        "queries_min_max": [min(queries), max(queries)],
        "transactions_per_call": statistics.median(call["transactions"] for call in counted),
        "statements_outside_transactions_per_call": statistics.median(call["outside_transactions"] for call in counted),
        "sql_of_one_call": counted[-1]["sql"],
    }


# --- the run --------------------------------------------------------------------------------

TICKET = {
    "contact": {"first_name": "Ana", "last_name": "Ruiz", "type": "customer"},
    "issue": {
        "summary": "Outlook keeps asking for the password",
        "description": "Since this morning Outlook prompts for credentials every few minutes on two laptops.",
        "conversation": [
            {"author": "contact", "body": "It started after the Windows update.", "at": "2026-11-20T09:12:00Z", "internal": False},
            {"author": "technician", "body": "Checked the account: not locked.", "at": "2026-11-20T09:40:00Z", "internal": True},
            {"author": "contact", "body": "Still happening on both machines.", "at": "2026-11-20T10:05:00Z", "internal": False},
        ],
    },
}


class Portal:
    """The running server and simulator, driven over HTTP."""

    def __init__(self, session, base_url: str, simulator_url: str) -> None:
        self.session, self.base_url, self.simulator_url = session, base_url, simulator_url
        self.control = {"X-Simulator-Token": SIMULATOR_TOKEN}

    async def request(self, method: str, url: str, *, expect: int = 200, **kwargs):
        async with self.session.request(method, url, **kwargs) as response:
            body = await response.read()
            if response.status != expect:
                raise RuntimeError(f"{method} {url}: {response.status} {body[:300]!r}")
            return json.loads(body) if body else None

    async def token(self, email: str) -> str:
        answer = await self.request("POST", f"{self.base_url}/api/v1/auth/token/", expect=201,
                                    json={"email": email, "password": DEMO_PASSWORD})
        return answer["token"]

    async def lift_limits(self, operator_token: str) -> None:
        """A load test is not abuse: the operator lifts every request and token limit."""
        url = f"{self.base_url}/api/v1/platform/limits/"
        headers = {"Authorization": f"Bearer {operator_token}"}
        policy = await self.request("GET", url, headers=headers)
        high = {name: 1_000_000_000 for name, value in policy.items()
                if isinstance(value, int) and name.endswith(("_per_minute", "_per_hour", "_per_day"))}
        await self.request("PATCH", url, headers=headers, json=high)

    async def upstream(self, delay_ms: int) -> None:
        behaviour = {"mode": "slow", "delay_ms": delay_ms} if delay_ms else {"mode": "ok"}
        await self.request("POST", f"{self.simulator_url}/_sim/behaviour", headers=self.control, json=behaviour)
        await self.request("DELETE", f"{self.simulator_url}/_sim/requests", headers=self.control)

    async def last_upstream_request(self) -> dict:
        recorded = await self.request("GET", f"{self.simulator_url}/_sim/requests", headers=self.control)
        requests = recorded["requests"] if isinstance(recorded, dict) else recorded
        return requests[-1]


async def run_sequential(session, api_url: str, api_body: bytes, api_headers: dict, via_sdk, web_pid: int) -> dict:
    """Phase 1: the portal and the direct SDK call, one at a time, in alternating rounds of ten."""
    for _ in range(20):
        await post(session, api_url, api_body, api_headers)
        await via_sdk()
    ours, theirs, failures = [], [], 0
    cpu_before = tree_cpu_seconds(web_pid)
    while len(ours) < SAMPLES:
        for _ in range(10):
            elapsed, status = await post(session, api_url, api_body, api_headers)
            ours.append(elapsed)
            failures += status != 200
        for _ in range(10):
            theirs.append(await via_sdk())
    cpu_after = tree_cpu_seconds(web_pid)
    sequential = {
        "samples": len(ours),
        "api_p50_ms": ms(percentile(ours, 0.5)),
        "api_p99_ms": ms(percentile(ours, 0.99)),
        "direct_sdk_p50_ms": ms(percentile(theirs, 0.5)),
        "direct_sdk_p99_ms": ms(percentile(theirs, 0.99)),
        "direct_sdk_transport": "the openai SDK's default (httpx2)",
        "non_200": failures,
        "cpu_ms_per_call": cpu_ms_per_call(cpu_before, cpu_after, len(ours)),
    }
    sequential["overhead_p50_ms"] = round(sequential["api_p50_ms"] - sequential["direct_sdk_p50_ms"], 2)
    sequential["overhead_p99_ms"] = round(sequential["api_p99_ms"] - sequential["direct_sdk_p99_ms"], 2)
    return sequential


async def measure(base_url: str, simulator_url: str, web_pid: int) -> dict:
    import aiohttp

    async with new_session(aiohttp) as session:
        return await _measure(session, base_url, simulator_url, web_pid)


async def _measure(session, base_url: str, simulator_url: str, web_pid: int) -> dict:
    import aiohttp
    from openai import AsyncAzureOpenAI

    portal = Portal(session, base_url, simulator_url)
    operator = await portal.token("operator@platform.example")
    await portal.lift_limits(operator)
    admin, tech = await portal.token(f"admin@{TENANT}.example"), await portal.token(f"tech@{TENANT}.example")
    companies = await portal.request("GET", f"{base_url}/api/v1/tenants/{TENANT}/companies/",
                                     headers={"Authorization": f"Bearer {admin}"})
    rows = companies["results"] if isinstance(companies, dict) else companies
    company = str(rows[0]["id"])

    api_url = f"{base_url}/api/v1/tenants/{TENANT}/copilot/{FEATURE}/"
    api_body = json.dumps({"company": company, **TICKET}).encode()
    api_headers = {"Authorization": f"Bearer {tech}", "Content-Type": "application/json"}

    # The chat completion the portal sends, read back from the simulator: the direct SDK call and
    # the ceiling send exactly that.
    await portal.upstream(0)
    _, status = await post(session, api_url, api_body, api_headers)
    if status != 200:
        raise RuntimeError(f"the copilot call answered {status}")
    sent = await portal.last_upstream_request()
    completion = {key: sent["body"][key] for key in ("messages", "response_format", "max_completion_tokens", "temperature")
                  if key in sent["body"]}
    deployment = sent["deployment"]
    upstream_url = f"{simulator_url}/openai/deployments/{deployment}/chat/completions?api-version={API_VERSION}"
    upstream_body = json.dumps({"model": deployment, **completion}).encode()
    upstream_headers = {"api-key": "bench", "Content-Type": "application/json"}
    direct = AsyncAzureOpenAI(azure_endpoint=simulator_url, api_version=API_VERSION, api_key="bench", max_retries=0)

    async def via_sdk() -> float:
        started = time.perf_counter()
        await direct.chat.completions.create(model=deployment, **completion)
        return time.perf_counter() - started

    try:
        sequential = await run_sequential(session, api_url, api_body, api_headers, via_sdk, web_pid)
    finally:
        await direct.close()

    # 2. Queries and transactions per call, in this process (its own thread and event loop).
    per_call = await asyncio.to_thread(count_in_process, tech, company)

    # 3. In flight, at a 1 s upstream: the bare upstream (ceiling), then the portal.
    await portal.upstream(UPSTREAM_DELAY_MS)
    in_flight = []
    for concurrency in CONCURRENCY:
        async with new_session(aiohttp) as load:
            ceiling = await closed_loop(load, upstream_url, upstream_body, upstream_headers, concurrency=concurrency)
        leg = await asyncio.to_thread(upstream_leg, simulator_url, deployment, FEATURE, completion["messages"],
                                      concurrency=concurrency)
        async with new_session(aiohttp) as load:
            cpu_before = tree_cpu_seconds(web_pid)
            served = await closed_loop(load, api_url, api_body, api_headers, concurrency=concurrency)
            served["cpu_ms_per_call"] = cpu_ms_per_call(cpu_before, tree_cpu_seconds(web_pid), served["calls"])
        in_flight.append({"ceiling": ceiling, "upstream_leg": leg, "portal": served})
    return {"sequential": sequential, "per_call": per_call, "in_flight": in_flight}


def table(result: dict) -> str:
    """The result as two Markdown tables."""
    seq, per_call = result["sequential"], result["per_call"]

    def cell(value) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    server = result["server"]
    lines = [
        (f"copilot call, {server['database']}{' + redis' if server['redis'] else ''},"
         f" {server['workers']} uvicorn workers, {server['cpus']} CPUs"),
        "",
        ("| sequential, upstream delay 0 | p50 ms | p99 ms | overhead p50 ms | overhead p99 ms"
         " | queries/call | transactions/call | CPU ms/call |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        (f"| openai SDK straight to the upstream | {cell(seq['direct_sdk_p50_ms'])} | {cell(seq['direct_sdk_p99_ms'])}"
         " | - | - | - | - | - |"),
        (f"| the portal's copilot call | {cell(seq['api_p50_ms'])} | {cell(seq['api_p99_ms'])}"
         f" | {cell(seq['overhead_p50_ms'])} | {cell(seq['overhead_p99_ms'])} | {cell(per_call['queries_per_call'])}"
         f" | {cell(per_call['transactions_per_call'])}"
         f" (+{cell(per_call['statements_outside_transactions_per_call'])} autocommit)"
         f" | {cell(seq['cpu_ms_per_call'])} |"),
        "",
        f"| in flight, upstream {UPSTREAM_DELAY_MS} ms | clients | req/s | errors | p50 ms | p99 ms | CPU ms/call |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for level in result["in_flight"]:
        for label, row in (("bare upstream (ceiling)", level["ceiling"]),
                           ("the upstream leg alone (openai SDK, no Django)", level["upstream_leg"]),
                           ("the portal's copilot call", level["portal"])):
            lines.append(
                f"| {label} | {row['in_flight']} | {cell(row['throughput_per_s'])} | {row['errors']}"
                f" | {cell(row['latency_p50_ms'])} | {cell(row['latency_p99_ms'])} | {cell(row.get('cpu_ms_per_call'))} |"
            )
    return "\n".join(lines)


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def run(runner: Callable) -> dict:
    simulator_port, web_port = free_port(), free_port()
    simulator_url, base_url = f"http://127.0.0.1:{simulator_port}", f"http://127.0.0.1:{web_port}"
    processes: list[subprocess.Popen] = []
    try:
        WORKDIR.mkdir(exist_ok=True)
        if FRESH_DATABASE:
            postgres_database("create")
        manage("migrate", "--noinput")
        manage("seed_demo", COPILOT_SIMULATOR="true", COPILOT_SIMULATOR_URL=simulator_url)
        simulator = subprocess.Popen(
            [sys.executable, "manage.py", "run_simulator", "--port", str(simulator_port), "--max-recorded", "100"],
            cwd=ROOT, env=SERVER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        processes.append(simulator)
        wait_for(f"{simulator_url}/_sim/health", simulator)
        if SERVER_ENV.get("CELERY_BROKER_URL"):
            processes.append(subprocess.Popen(
                ["celery", "-A", "copilot_admin", "worker", "-B", "--concurrency", "1", "--loglevel", "WARNING",
                 "--schedule", str(WORKDIR / "celerybeat-schedule")],
                cwd=ROOT, env=SERVER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            ))
        # Its log goes to a file, not a pipe: a pipe nobody reads while it serves would fill up and
        # block every worker at its next log line.
        web_log = WORKDIR / "web.log"
        with web_log.open("wb") as log:
            web = subprocess.Popen(web_command(web_port), cwd=ROOT, env=SERVER_ENV, stdout=subprocess.DEVNULL,
                                   stderr=log, start_new_session=True)
        processes.append(web)
        try:
            wait_for(f"{base_url}/login/", web)
        except RuntimeError:
            stop(web)
            raise RuntimeError(f"the web process did not start: {web_log.read_text(errors='replace')[-2000:]}") from None
        measured = runner(measure(base_url, simulator_url, web.pid))
        return {
            "server": {
                "command": "Procfile web (uvicorn copilot_admin.asgi:application)", "workers": WORKERS,
                "database": DATABASE_URL.split(":", 1)[0].replace("postgresql", "postgres"),
                "redis": bool(os.environ.get("REDIS_URL")), "cpus": os.cpu_count(),
                "audit_sealing": "Celery worker + beat" if SERVER_ENV.get("CELERY_BROKER_URL") else "on commit",
            },
            "load_generator": "aiohttp",
            **measured,
        }
    finally:
        for process in reversed(processes):
            stop(process)
        if FRESH_DATABASE:
            postgres_database("drop")
        shutil.rmtree(WORKDIR, ignore_errors=True)


def event_loop_runner() -> Callable:
    """asyncio.run on uvloop when it is installed (uvicorn[standard] brings it): a cheaper generator."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run

    def runner(coroutine):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
            return loop_runner.run(coroutine)

    return runner


def main(argv: list[str]) -> None:
    json_path = None
    if argv[:1] == ["--json"] and len(argv) == 2:
        json_path = Path(argv[1])
    elif argv:
        sys.exit("usage: bench_copilot.py [--json PATH]")
    result = run(event_loop_runner())
    result["table"] = table(result)
    print(result["table"], file=sys.stderr)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])

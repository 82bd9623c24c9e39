"""Benchmark of the copilot call over the REST API; prints one JSON object.

The server is the Procfile's `web` process (uvicorn, ASGI, `WEB_CONCURRENCY` workers,
default 2) on a free loopback port; the upstream is the built-in Azure OpenAI simulator in a
process of its own (`manage.py run_simulator`); the database a temporary SQLite file, or
`BENCH_DATABASE_URL` (e.g. a PostgreSQL database the bench may fill). Every number is taken in
this one run, so ratios compare like with like on the same machine.

1. Overhead: the median latency of one `POST /api/v1/tenants/<slug>/copilot/summarize/`
   (token authentication, the access chain, limits hooks, minimization, routing, the upstream
   call, usage record, audit entry, deployment health) against the median of the same chat
   completion sent straight to the same simulator with the openai SDK (`AsyncAzureOpenAI`),
   sequentially, in alternating rounds, upstream delay 0.
2. In flight: N calls started at once against a simulator that takes 1 s to answer; wall
   time, throughput, latency percentiles, and the most calls the server held at once between
   admission and answer (from the usage records). A server that tied a worker to each
   in-flight call would hold at most its worker count and need N/workers seconds. The same
   burst sent straight to the simulator with the SDK gives the floor.

Environment: `BENCH_COPILOT_CONCURRENCY` (default "100,200,400"), `BENCH_COPILOT_SAMPLES`
(default 150), `WEB_CONCURRENCY` (default 2), `BENCH_DATABASE_URL`. Runs in about a minute.
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
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKDIR = Path(tempfile.mkdtemp(prefix="bench-copilot-"))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{WORKDIR / 'bench.sqlite3'}"
KEY_ENV = "AZURE_OPENAI_KEY_BENCH"
API_VERSION = "2024-10-21"
CONCURRENCY = [int(n) for n in os.environ.get("BENCH_COPILOT_CONCURRENCY", "100,200,400").split(",") if n.strip()]
SAMPLES = int(os.environ.get("BENCH_COPILOT_SAMPLES", "150"))
WORKERS = int(os.environ.get("WEB_CONCURRENCY", "2"))
UPSTREAM_DELAY_MS = 1000
SIMULATOR_TOKEN = secrets.token_urlsafe(24)
SIMULATOR_CONTROL = {"X-Simulator-Token": SIMULATOR_TOKEN}

SERVER_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COPILOT_"))},
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "COPILOT_SIMULATOR": "false",
    # The standalone simulator's control endpoints (behaviours, request log) need this token.
    "COPILOT_SIMULATOR_TOKEN": SIMULATOR_TOKEN,
    "LOG_LEVEL": "WARNING",
    KEY_ENV: "bench-key-not-a-secret",
    "PYTHONPATH": str(ROOT),
    # The Procfile names bare commands (uvicorn): the ones of this interpreter's environment.
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
}
os.environ.update({k: SERVER_ENV[k] for k in ("DATABASE_URL", "DJANGO_DEBUG", "COPILOT_SIMULATOR", "LOG_LEVEL", KEY_ENV)})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")

import django  # noqa: E402

django.setup()

import httpx2  # noqa: E402  (the HTTP client the openai SDK ships with)
from openai import AsyncAzureOpenAI  # noqa: E402

from copilot_admin.copilot.features import get_feature  # noqa: E402
from copilot_admin.copilot.minimize import minimize_payload  # noqa: E402
from copilot_admin.copilot.prompts import render_messages  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx2.get(url, timeout=2)
            return
        except httpx2.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def web_command(port: int) -> list[str]:
    """The Procfile's `web` line, run as the shell would, on `port`."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = line.split(":", 1)[1].strip().replace("--host 0.0.0.0", "--host 127.0.0.1")
    return ["bash", "-c", f"export PORT={port} WEB_CONCURRENCY={WORKERS}; exec {command}"]


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=SERVER_ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def seed(simulator_url: str) -> tuple[str, str, str]:
    """A copilot tenant in zone us, a technician with an API token, one deployment; returns (tenant slug, token, company id)."""
    from django.utils import timezone
    from knox.models import AuthToken

    from copilot_admin.access.models import SecurityRole
    from copilot_admin.platform import services as platform
    from copilot_admin.regions import services as regions
    from copilot_admin.regions.models import DataZone
    from copilot_admin.usage import services as usage
    from copilot_admin.usage.limits import LIMIT_FIELDS
    from tenants.models import ClientCompany, Membership, Plan, User

    zone = DataZone.objects.get(code="us")
    tenant = platform.tenant_create(actor=None, name="Bench MSP", slug=f"bench-{os.getpid()}", plan=Plan.ULTIMATE, zone=zone)
    tenant.copilot_enabled = True
    tenant.feature_switches = {"summarize": True, "time-entry": True, "prioritize": True}
    tenant.save()
    company = ClientCompany.objects.for_tenant(tenant).create(tenant=tenant, name="Bench Client")
    user = User.objects.create_user(f"tech-{os.getpid()}@bench.example", "bench-password-0123")
    role = SecurityRole.objects.for_tenant(tenant).get(name="Technician")
    Membership.objects.for_tenant(tenant).create(
        tenant=tenant, user=user, user_type="internal", role=role, accepted_at=timezone.now()
    )
    regions.deployment_create(actor=None, zone=zone, name=f"bench-us-{os.getpid()}", endpoint=simulator_url,
                              deployment="bench-gpt-4o", api_version=API_VERSION, api_key_env=KEY_ENV, priority=1)
    _, token = AuthToken.objects.create(user=user)
    # A load test is not abuse: an operator lifts the platform's limits for it.
    operator = User.objects.create_user(f"operator-{os.getpid()}@bench.example", is_platform_operator=True)
    high = 1_000_000_000
    usage.platform_limits_update(actor=operator, changes={
        **{name: high for name in LIMIT_FIELDS}, **{f"max_{name}": high for name in LIMIT_FIELDS},
    })
    return tenant.slug, token, str(company.pk)


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


def set_upstream_delay(simulator_url: str, delay_ms: int) -> None:
    mode = "slow" if delay_ms else "ok"
    httpx2.post(f"{simulator_url}/_sim/behaviour", json={"mode": mode, "delay_ms": delay_ms}, headers=SIMULATOR_CONTROL,
                timeout=5).raise_for_status()
    httpx2.delete(f"{simulator_url}/_sim/requests", headers=SIMULATOR_CONTROL, timeout=5).raise_for_status()


def peak_in_flight(slug: str, since) -> int:
    """The most calls the server held at once between admission and answer (from the usage
    records: each spans `latency_ms` before its `created_at`)."""
    from datetime import timedelta

    from copilot_admin.usage.models import UsageRecord
    from tenants.models import Tenant

    events = []
    tenant = Tenant.objects.get(slug=slug)
    for created_at, latency_ms in UsageRecord.objects.for_tenant(tenant).filter(created_at__gte=since).values_list(
        "created_at", "latency_ms"
    ):
        events += [(created_at - timedelta(milliseconds=latency_ms), 1), (created_at, -1)]
    peak = current = 0
    for _, step in sorted(events):
        current += step
        peak = max(peak, current)
    return peak


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def main_async(base_url: str, simulator_url: str, slug: str, token: str, company: str) -> dict:
    api_url = f"{base_url}/api/v1/tenants/{slug}/copilot/summarize/"
    body = {"company": company, **TICKET}
    headers = {"Authorization": f"Bearer {token}"}
    spec = get_feature("summarize")
    messages = render_messages(feature="summarize", payload=minimize_payload(body=body))
    limits = httpx2.Limits(max_connections=2000, max_keepalive_connections=2000)
    client = httpx2.AsyncClient(limits=limits, timeout=60)
    direct = AsyncAzureOpenAI(azure_endpoint=simulator_url, api_version=API_VERSION, api_key="bench", max_retries=0,
                              http_client=httpx2.AsyncClient(limits=limits, timeout=60))

    async def via_api() -> tuple[float, int]:
        started = time.perf_counter()
        try:
            response = await client.post(api_url, json=body, headers=headers)
        except httpx2.TransportError:
            return time.perf_counter() - started, 0  # counted as a failure, not retried
        return time.perf_counter() - started, response.status_code

    async def via_sdk() -> tuple[float, int]:
        started = time.perf_counter()
        await direct.chat.completions.create(
            model="bench-gpt-4o", messages=messages, response_format=spec.response_format(),
            max_completion_tokens=spec.max_completion_tokens, temperature=spec.temperature,
        )
        return time.perf_counter() - started, 200

    # 1. Overhead, sequential, alternating rounds of ten.
    set_upstream_delay(simulator_url, 0)
    for _ in range(20):
        await via_api()
        await via_sdk()
    ours, theirs, failures = [], [], 0
    while len(ours) < SAMPLES:
        for _ in range(10):
            elapsed, status = await via_api()
            ours.append(elapsed)
            failures += status != 200
        for _ in range(10):
            theirs.append((await via_sdk())[0])
    api_median, sdk_median = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    result: dict = {
        "overhead": {
            "samples": len(ours),
            "api_median_ms": round(api_median, 2),
            "api_p90_ms": round(percentile(ours, 0.9) * 1000, 2),
            "direct_sdk_median_ms": round(sdk_median, 2),
            "direct_sdk_p90_ms": round(percentile(theirs, 0.9) * 1000, 2),
            "overhead_median_ms": round(api_median - sdk_median, 2),
            "ratio_api_to_direct": round(api_median / sdk_median, 2),
            "non_200": failures,
        }
    }

    # 2. In flight at a 1 s upstream.
    set_upstream_delay(simulator_url, UPSTREAM_DELAY_MS)
    await asyncio.gather(*[via_api() for _ in range(20)])  # warm the connection pools
    bursts = []
    for n in CONCURRENCY:
        # Fresh connections for each burst: none left idle past the server's keep-alive timeout.
        await client.aclose()
        client = httpx2.AsyncClient(limits=limits, timeout=60)
        started = time.perf_counter()
        floor = await asyncio.gather(*[via_sdk() for _ in range(n)])
        floor_wall = time.perf_counter() - started
        since = datetime.now(UTC)
        started = time.perf_counter()
        outcomes = await asyncio.gather(*[via_api() for _ in range(n)])
        wall = time.perf_counter() - started
        latencies = [elapsed for elapsed, _ in outcomes]
        bursts.append({
            "in_flight": n,
            "upstream_latency_ms": UPSTREAM_DELAY_MS,
            "wall_s": round(wall, 3),
            "throughput_per_s": round(n / wall, 1),
            "latency_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "latency_p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
            "latency_max_ms": round(max(latencies) * 1000, 1),
            "ok": sum(status == 200 for _, status in outcomes),
            "statuses": sorted({status for _, status in outcomes}),
            "direct_sdk_wall_s": round(floor_wall, 3),
            "ratio_wall_to_direct": round(wall / floor_wall, 2),
            "peak_calls_in_flight_in_server": await asyncio.to_thread(peak_in_flight, slug, since),
        })
        del floor
    result["in_flight"] = bursts
    await client.aclose()
    await direct.close()
    return result


def main() -> None:
    simulator_port, web_port = free_port(), free_port()
    simulator_url = f"http://127.0.0.1:{simulator_port}"
    processes: list[subprocess.Popen] = []
    try:
        manage("migrate", "--noinput")
        processes.append(subprocess.Popen(
            [sys.executable, "manage.py", "run_simulator", "--port", str(simulator_port), "--max-recorded", "100"],
            cwd=ROOT, env=SERVER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ))
        wait_for(f"{simulator_url}/_sim/health")
        slug, token, company = seed(simulator_url)
        from django.db import connections

        connections.close_all()
        web = subprocess.Popen(web_command(web_port), cwd=ROOT, env=SERVER_ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
        processes.append(web)
        try:
            wait_for(f"http://127.0.0.1:{web_port}/login/")
        except RuntimeError:
            web.terminate()
            raise RuntimeError(f"the web process did not start: {web.communicate(timeout=15)[1].decode()[-2000:]}") from None
        result = {
            "server": {"command": "Procfile web (uvicorn copilot_admin.asgi:application)", "workers": WORKERS,
                       "database": DATABASE_URL.split(":", 1)[0], "cpus": os.cpu_count()},
            **asyncio.run(main_async(f"http://127.0.0.1:{web_port}", simulator_url, slug, token, company)),
        }
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(WORKDIR, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark of the upstream path's timings; prints one JSON object.

The tests prove these behaviours by counting (requests in flight at the simulator, requests
abandoned by their client); the wall times live here, where a busy machine cannot fail a build.
The simulator runs in a process of its own (`manage.py run_simulator`), so the CPU time of this
process is the client's.

1. Concurrency: three bursts of 500 copilot upstream calls (`azure.acall_with_failover`, the
   aiohttp client of one deployment), each held 1 s by the simulator, from one event loop. For
   each burst: the wall time, its ratio to the 1 s a single call takes (near 1 when they
   overlap; 500 if they ran one after another), the client's CPU milliseconds per call, and the
   simulator's peak of requests in flight. The first burst opens the connections; the next ones
   reuse them.
2. The per-request timeout: a 0.3 s target timeout against a simulator that answers after 3 s;
   reports the time until the call gave up (should be near 0.3 s, well below 3 s).
3. The call deadline: a 0.4 s deadline over two deployments, the first answering after 2 s;
   reports the time until the call gave up (near 0.4 s, well below 2 s).

Runs in about twenty seconds; needs nothing but this repository.
"""

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
import django  # noqa: E402

django.setup()  # the copilot's feature registry holds serializers

from copilot_admin.copilot import azure  # noqa: E402
from copilot_admin.simulator.server import SimulatorControl  # noqa: E402

API_KEY_ENV = "AZURE_OPENAI_KEY_BENCH"
os.environ[API_KEY_ENV] = "bench-key-not-a-secret"
MESSAGES = [{"role": "user", "content": "ticket"}]


def target(url: str, deployment: str = "bench", **overrides) -> azure.DeploymentTarget:
    options = {
        "name": f"sim-{deployment}", "endpoint": url, "deployment": deployment, "api_version": "2024-10-21",
        "auth_mode": "api_key", "api_key_env": API_KEY_ENV, "timeout_seconds": 30.0, "connect_timeout_seconds": 5.0,
    }
    options.update(overrides)
    return azure.DeploymentTarget(**options)


def concurrency(url: str, sim: SimulatorControl, calls: int = 500, delay_ms: int = 1000, bursts: int = 3) -> dict:
    sim.reset()
    sim.set_behaviour("slow", delay_ms=delay_ms)
    one = target(url)

    async def burst() -> dict:
        cpu, started = time.process_time(), time.perf_counter()
        results = await asyncio.gather(
            *(azure.acall_with_failover(targets=[one], messages=MESSAGES, feature="prioritize") for _ in range(calls))
        )
        wall = time.perf_counter() - started
        return {
            "succeeded": len(results), "wall_seconds": round(wall, 3),
            "wall_per_upstream_delay": round(wall / (delay_ms / 1000), 2),
            "client_cpu_ms_per_call": round((time.process_time() - cpu) * 1000 / calls, 2),
        }

    async def many() -> list[dict]:
        return [await burst() for _ in range(bursts)]

    return {
        "calls": calls, "upstream_delay_seconds": delay_ms / 1000, "bursts": asyncio.run(many()),
        "peak_in_flight_at_upstream": sim.stats()["peak_in_flight"],
    }


def gave_up_after(call) -> float:
    started = time.perf_counter()
    try:
        call()
    except azure.UpstreamTimeout:
        return round(time.perf_counter() - started, 3)
    raise RuntimeError("the call did not time out")


def timeout_bound(url: str, sim: SimulatorControl) -> dict:
    sim.reset()
    sim.set_behaviour("slow", delay_ms=3000)
    elapsed = gave_up_after(lambda: azure.call_with_failover(
        targets=[target(url, timeout_seconds=0.3)], messages=MESSAGES, feature="summarize"
    ))
    return {"target_timeout_seconds": 0.3, "upstream_delay_seconds": 3.0, "gave_up_after_seconds": elapsed}


def deadline_bound(url: str, sim: SimulatorControl) -> dict:
    sim.reset()
    sim.set_behaviour("slow", delay_ms=2000, deployment="dep-a")
    elapsed = gave_up_after(lambda: azure.call_with_failover(
        targets=[target(url, "dep-a", timeout_seconds=5.0), target(url, "dep-b", timeout_seconds=5.0)],
        messages=MESSAGES, feature="summarize", deadline_seconds=0.4,
    ))
    return {"deadline_seconds": 0.4, "first_upstream_delay_seconds": 2.0, "gave_up_after_seconds": elapsed}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    token, port = secrets.token_urlsafe(24), free_port()  # the simulator's control endpoints need a token
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "COPILOT_SIMULATOR_TOKEN": token, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    simulator = subprocess.Popen(
        [sys.executable, "manage.py", "run_simulator", "--port", str(port), "--max-recorded", "100"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_sim/health", timeout=2).close()
                break
            except OSError:
                if simulator.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.2)
        sim = SimulatorControl(url, token=token)
        result = {
            "concurrency": concurrency(url, sim),
            "timeout": timeout_bound(url, sim),
            "deadline": deadline_bound(url, sim),
        }
    finally:
        os.killpg(simulator.pid, signal.SIGTERM)
        simulator.wait(timeout=15)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark of the upstream path's timings; prints one JSON object.

The tests prove these behaviours by counting (requests in flight at the simulator, requests
abandoned by their client); the wall times live here, where a busy machine cannot fail a build.

1. Concurrency: 300 copilot upstream calls (`azure.acall_with_failover`), each held 1 s by the
   simulator, from one event loop. Reports the wall time, its ratio to the 1 s a single call
   takes (near 1 when they overlap; 300 if they ran one after another) and the simulator's peak
   of requests in flight.
2. The per-request timeout: a 0.3 s target timeout against a simulator that answers after 3 s;
   reports the time until the call gave up (should be near 0.3 s, well below 3 s).
3. The call deadline: a 0.4 s deadline over two deployments, the first answering after 2 s;
   reports the time until the call gave up (near 0.4 s, well below 2 s).

Runs in about ten seconds; needs nothing but this repository (the simulator runs in-process).
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from copilot_admin.copilot import azure  # noqa: E402
from copilot_admin.simulator.server import SimulatorControl, run_simulator_in_thread  # noqa: E402

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


def concurrency(url: str, sim: SimulatorControl, calls: int = 300, delay_ms: int = 1000) -> dict:
    sim.reset()
    sim.set_behaviour("slow", delay_ms=delay_ms)
    one = target(url)

    async def many():
        return await asyncio.gather(
            *(azure.acall_with_failover(targets=[one], messages=MESSAGES, feature="prioritize") for _ in range(calls))
        )

    started = time.perf_counter()
    results = asyncio.run(many())
    wall = time.perf_counter() - started
    return {
        "calls": calls, "upstream_delay_seconds": delay_ms / 1000, "succeeded": len(results),
        "wall_seconds": round(wall, 3), "wall_per_upstream_delay": round(wall / (delay_ms / 1000), 2),
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


def main() -> None:
    with run_simulator_in_thread() as url:
        sim = SimulatorControl(url)
        result = {
            "concurrency": concurrency(url, sim),
            "timeout": timeout_bound(url, sim),
            "deadline": deadline_bound(url, sim),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""The copilot call's upstream leg alone, under load: one process of `bench_copilot.py`'s
"upstream leg" row (not a benchmark of its own: `python -m bench` runs `bench_*.py` only).

It sends the portal's chat completion to the simulator through the portal's own upstream code,
`copilot.azure.acall_with_failover` (the openai SDK's `AsyncAzureOpenAI` on its aiohttp
transport, one client per deployment, the answer read and checked as a call reads it), from
`--clients` tasks each sending one call after another, with no Django request, database or
Redis around it. `bench_copilot.py` starts one such process per web worker, so the row shows
what the SDK leg alone costs and reaches on this machine with the processes the portal has.

Protocol (stdin/stdout, one JSON line each): the process prints `{"ready": true}` once set up,
waits for a line on stdin, runs the clients (`bench_copilot.run_clients`: `--warmup`, then
`--seconds`), writes its result to `--out` and prints `{"done": true}`. The result: every call
as `run_clients` gives it (status 200, or 0 when it failed) and the process's CPU seconds over
the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from bench.bench_copilot import event_loop_runner, run_clients


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--api-version", required=True)
    parser.add_argument("--feature", required=True)
    parser.add_argument("--messages", required=True, help="the chat messages, as JSON")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", required=True, help="the file the result is written to, as JSON")
    return parser.parse_args(argv)


async def load(options: argparse.Namespace) -> dict:
    from copilot_admin.copilot import azure

    target = azure.DeploymentTarget(
        name="bench", endpoint=options.endpoint, deployment=options.deployment, api_version=options.api_version,
        api_key_env="AZURE_OPENAI_KEY_SIMULATOR",
    )
    messages = json.loads(options.messages)

    async def one() -> int:
        try:
            await azure.acall_with_failover(targets=[target], messages=messages, feature=options.feature)
        except azure.UpstreamFailure:
            return 0  # no usable answer, as `bench_copilot.post` counts one
        return 200

    first = await one()
    if first != 200:
        raise RuntimeError(f"the upstream leg's first call failed ({first})")
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    cpu_start = time.process_time()
    calls = await run_clients(one, concurrency=options.clients, warmup=options.warmup, window=options.seconds)
    cpu_seconds = time.process_time() - cpu_start
    await azure.aclose_clients()
    return {"calls": calls, "cpu_seconds": cpu_seconds}


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
    import django

    django.setup()
    options = parse(argv)
    result = event_loop_runner()(load(options))
    with open(options.out, "w") as out:
        json.dump(result, out)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The copilot call's upstream leg alone, under load: one process of `bench_copilot.py`'s
"upstream leg" row (not a benchmark of its own: `python -m bench` runs `bench_*.py` only).

It sends the portal's chat completion to the simulator through the portal's own upstream code,
`copilot.azure.acall_with_failover` (the openai SDK's `AsyncAzureOpenAI` on its aiohttp
transport, one client per deployment, the answer read and checked as a call reads it), from
`--clients` tasks each sending one call after another, with no Django request, database or
Redis around it. `bench_copilot.py` starts one such process per web worker, so the row shows
what the SDK leg alone costs and reaches on this machine with the processes the portal has.

Protocol (stdin/stdout, one JSON line each): the process prints `{"ready": true}` once set up,
waits for a line on stdin, runs `--warmup` + `--seconds`, writes its result to `--out` and
prints `{"done": true}`. The result: the calls answered inside the window as (sent, answered)
offsets from the window's start, the calls sent and those that failed, and the process's CPU
seconds over the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time


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

    async def one() -> bool:
        try:
            await azure.acall_with_failover(targets=[target], messages=messages, feature=options.feature)
        except azure.UpstreamFailure:
            return False
        return True

    assert await one(), "the upstream leg's first call failed"
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    started = time.perf_counter()
    window_start, cpu_start = started + options.warmup, time.process_time()
    window_end = window_start + options.seconds
    answered: list[tuple[float, float]] = []
    failed = 0

    async def client() -> None:
        nonlocal failed
        while (sent := time.perf_counter()) < window_end:
            if await one():
                answered.append((sent, time.perf_counter()))
            else:
                failed += 1

    await asyncio.gather(*(client() for _ in range(options.clients)))
    cpu_seconds = time.process_time() - cpu_start
    await azure.aclose_clients()
    in_window = [(sent - window_start, done - window_start) for sent, done in answered
                 if window_start <= done < window_end]
    return {"in_window": in_window, "calls": len(answered) + failed, "errors": failed, "cpu_seconds": cpu_seconds}


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")
    import django

    django.setup()
    options = parse(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(load(options))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(load(options))
    with open(options.out, "w") as out:
        json.dump(result, out)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

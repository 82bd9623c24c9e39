"""`python -m bench` (`make bench`): run every bench/bench_*.py, each in its own process, and
print their results as one JSON object {bench name: result}.

Each benchmark is a standalone script that prints one JSON object on its last lines; a result
holding a `table` (Markdown) has it printed to stderr as well, for people. Pass names to run
only some (`python -m bench copilot limits`), and `--json PATH` to write the JSON to a file too.
The exit status is non-zero when a benchmark failed; its error output is kept in the result.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TIMEOUT_SECONDS = 900


def _parse(stdout: str):
    """The JSON object a benchmark printed (the last top-level `{` block of its output)."""
    lines = stdout.splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].startswith("{"):
            try:
                return json.loads("\n".join(lines[start:]))
            except ValueError:
                continue
    raise ValueError("no JSON object in the output")


def main(argv: list[str]) -> int:
    json_path = None
    if "--json" in argv:
        at = argv.index("--json")
        if at + 1 >= len(argv):
            print("usage: python -m bench [NAME ...] [--json PATH]", file=sys.stderr)
            return 2
        json_path = Path(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if argv:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in argv}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    results, failed = {}, False
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, str(script)], cwd=BENCH_DIR.parent, capture_output=True, text=True,
                                  timeout=TIMEOUT_SECONDS)
            result = _parse(done.stdout) if done.returncode == 0 else None
            if result is None:
                failed = True
                result = {"error": f"exit status {done.returncode}", "stderr": done.stderr[-3000:]}
        except subprocess.TimeoutExpired:
            failed, result = True, {"error": f"timed out after {TIMEOUT_SECONDS} s"}
        except ValueError as exc:
            failed, result = True, {"error": str(exc), "stdout": done.stdout[-3000:]}
        results[name] = {"seconds": round(time.monotonic() - started, 1), "result": result}
        if isinstance(result.get("table"), str):
            print(f"\n{result['table']}\n", file=sys.stderr, flush=True)
    output = json.dumps(results, indent=2)
    if json_path is not None:
        json_path.write_text(output + "\n")
    print(output)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

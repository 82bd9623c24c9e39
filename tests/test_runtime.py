"""The long-running processes tune their garbage collector at start (core/runtime.py).

Each case starts a fresh interpreter: the tuning is process-wide, and this test process must
keep Python's own collector settings.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REPORT = "import gc; print(*gc.get_threshold(), gc.get_freeze_count())"


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    inherited = {key: value for key, value in os.environ.items() if key != "GC_THRESHOLDS"}
    environment = {**inherited, "DJANGO_SETTINGS_MODULE": "copilot_admin.settings", **env}
    return subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)


def _report(done: subprocess.CompletedProcess) -> tuple[tuple[int, int, int], int]:
    assert done.returncode == 0, done.stderr[-2000:]
    *thresholds, frozen = map(int, done.stdout.split()[-4:])
    return tuple(thresholds), frozen


def test_a_web_worker_freezes_what_it_loaded_and_raises_the_thresholds():
    thresholds, frozen = _report(_run(f"import copilot_admin.asgi; {REPORT}"))
    assert thresholds == (50_000, 20, 100)
    # Django, the URLconf and the views: far more than a bare interpreter's few thousand objects.
    assert frozen > 50_000


def test_the_web_worker_loads_the_urlconf_before_freezing():
    code = ("import copilot_admin.asgi, sys; "
            "print(int('copilot_admin.copilot.api' in sys.modules and 'copilot_admin.urls' in sys.modules))")
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "1"


def test_the_thresholds_come_from_the_environment():
    thresholds, _ = _report(_run(f"import copilot_admin.asgi; {REPORT}", GC_THRESHOLDS="1000, 5,7"))
    assert thresholds == (1000, 5, 7)


def test_malformed_thresholds_stop_start_up_with_the_variable_named():
    for raw in ("1000,5", "1000,5,x", "-1,5,5"):
        done = _run(f"import copilot_admin.asgi; {REPORT}", GC_THRESHOLDS=raw)
        assert done.returncode != 0
        assert "GC_THRESHOLDS must be 3 comma-separated non-negative integers" in done.stderr


def test_a_celery_worker_child_tunes_itself_when_it_starts():
    code = ("import django; django.setup(); import copilot_admin.celery; "
            "from celery.signals import worker_process_init; worker_process_init.send(sender=None); " + REPORT)
    thresholds, frozen = _report(_run(code))
    assert thresholds == (50_000, 20, 100)
    assert frozen > 0
    # Without the signal a process keeps Python's own collector settings.
    assert _report(_run("import django; django.setup(); import copilot_admin.celery; " + REPORT)) == ((700, 10, 10), 0)

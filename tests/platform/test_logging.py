"""`make run` (DEBUG on, runserver): each log line is printed once (issue 14).

Django's default logging gives the "django" logger a console handler of its own when DEBUG is on;
with the project's root console handler too, every django.request line came out twice. The
configuration is checked in a fresh interpreter, as `manage.py runserver` would set it up.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import logging
import django

django.setup()
logging.getLogger("django.request").warning("probe-django-request")
logging.getLogger("django.security.csrf").warning("probe-django-security")
logging.getLogger("django").warning("probe-django")
logging.getLogger("copilot_admin.usage").warning("probe-app")
logging.getLogger("django.server").warning("probe-server")
"""


@pytest.mark.parametrize("debug", ["true", "false"])
def test_each_log_line_is_printed_once(debug):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "copilot_admin.settings", "DJANGO_DEBUG": debug}
    env.pop("DJANGO_ENV", None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    output = result.stdout + result.stderr
    for probe in ("probe-django-request", "probe-django-security", "probe-django", "probe-app", "probe-server"):
        lines = [line for line in output.splitlines() if line.endswith(probe)]
        assert len(lines) == 1, f"{probe} printed {len(lines)} times:\n{output}"
    # The project's format (time, level, logger) for everything but runserver's request lines.
    assert any(line.endswith("WARNING django.request probe-django-request") for line in output.splitlines())

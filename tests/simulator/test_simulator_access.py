"""Who may reach the simulator: it is mounted only when COPILOT_SIMULATOR is set (never by
DEBUG alone), and its control endpoints, whose request log holds every prompt, need the
control token from the environment (COPILOT_SIMULATOR_TOKEN)."""

import importlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.urls import clear_url_caches

from copilot_admin.copilot.features import FEATURES
from copilot_admin.simulator.management.commands import run_simulator as run_simulator_command
from copilot_admin.simulator.server import SimulatorControl, run_simulator_in_thread
from tests.copilot.conftest import API_VERSION, SIM_TOKEN

ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = f"/openai/deployments/gpt-4o/chat/completions?api-version={API_VERSION}"
CHAT = {"messages": [{"role": "user", "content": "Printer offline"}],
        "response_format": FEATURES["summarize"].response_format()}


def status_of(url: str, method: str = "GET", *, headers: dict | None = None, body: object | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# --- the standalone simulator (tests, run_simulator) ----------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/_sim/requests"), ("DELETE", "/_sim/requests"), ("GET", "/_sim/behaviour"),
    ("POST", "/_sim/behaviour"), ("DELETE", "/_sim/behaviour"),
])
def test_control_endpoints_need_the_token(simulator_url, sim, method, path):
    body = {"mode": "500"} if method == "POST" else None
    assert status_of(simulator_url + path, method, body=body) == 403
    assert status_of(simulator_url + path, method, body=body, headers={"X-Simulator-Token": "wrong"}) == 403
    assert status_of(simulator_url + path, method, body=body, headers={"X-Simulator-Token": SIM_TOKEN}) == 200
    assert sim.set_behaviour("ok")["default"]["mode"] == "ok"  # nothing a refused request asked for stuck


def test_the_request_log_is_not_readable_without_the_token(simulator_url, sim):
    status_of(simulator_url + COMPLETIONS, "POST", body=CHAT, headers={"api-key": "k"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        SimulatorControl(simulator_url).requests()
    assert refused.value.code == 403 and b"Printer" not in refused.value.read()
    assert [r["body"]["messages"][0]["content"] for r in sim.requests()] == ["Printer offline"]


def test_without_a_configured_token_no_control_endpoint_is_served():
    with run_simulator_in_thread() as url:
        assert status_of(url + "/_sim/requests") == 404
        assert status_of(url + "/_sim/requests", headers={"X-Simulator-Token": ""}) == 404
        assert status_of(url + "/_sim/behaviour", "POST", body={"mode": "500"}) == 404
        assert status_of(url + "/_sim/health") == 200
        assert status_of(url + COMPLETIONS, "POST", body=CHAT, headers={"api-key": "k"}) == 200


def test_health_and_completions_need_no_control_token(simulator_url, sim):
    assert status_of(simulator_url + "/_sim/health") == 200
    assert status_of(simulator_url + COMPLETIONS, "POST", body=CHAT, headers={"api-key": "k"}) == 200
    assert status_of(simulator_url + COMPLETIONS, "POST", body=CHAT) == 401  # the api-key, like Azure


def test_the_token_is_not_recorded(simulator_url, sim):
    status_of(simulator_url + COMPLETIONS, "POST", body=CHAT, headers={"api-key": "k", "X-Simulator-Token": SIM_TOKEN})
    assert SIM_TOKEN not in json.dumps(sim.requests())


@pytest.mark.parametrize("token", ["from-the-environment", ""])
def test_management_command_takes_the_token_from_the_environment(monkeypatch, settings, token):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: seen.setdefault("config", self.config))
    settings.COPILOT_SIMULATOR_TOKEN = token
    command = run_simulator_command.Command()
    options = vars(command.create_parser("manage.py", "run_simulator").parse_args(["--port", "8799"]))
    command.execute(**{**options, "skip_checks": True})
    assert seen["config"].app.state.control_token == (token or None)


# --- mounted in the project at /_simulator/ ---------------------------------------------------------


@pytest.fixture
def mounted():
    """The project's URLconf as it is with COPILOT_SIMULATOR set (and restored afterwards)."""
    import copilot_admin.urls

    with override_settings(COPILOT_SIMULATOR=True, COPILOT_SIMULATOR_TOKEN="mounted-token"):
        importlib.reload(copilot_admin.urls)
        clear_url_caches()
        yield Client()
    importlib.reload(copilot_admin.urls)
    clear_url_caches()


def test_mounted_simulator_protects_its_request_log(mounted, db):
    assert mounted.get("/_simulator/_sim/requests").status_code == 403
    assert mounted.get("/_simulator/_sim/requests", headers={"X-Simulator-Token": "wrong"}).status_code == 403
    response = mounted.get("/_simulator/_sim/requests", headers={"X-Simulator-Token": "mounted-token"})
    assert response.status_code == 200 and "requests" in response.json()
    assert mounted.post("/_simulator/_sim/behaviour", {"mode": "500"}, content_type="application/json").status_code == 403
    completion = mounted.post(f"/_simulator{COMPLETIONS}", CHAT, content_type="application/json", headers={"api-key": "k"})
    assert completion.status_code == 200


def test_mounted_simulator_without_a_token_serves_no_control_endpoint(mounted, db, settings):
    settings.COPILOT_SIMULATOR_TOKEN = ""
    assert mounted.get("/_simulator/_sim/requests").status_code == 404
    assert mounted.get("/_simulator/_sim/requests", headers={"X-Simulator-Token": "mounted-token"}).status_code == 404


def _mounted_in_a_fresh_process(**env: str) -> str:
    """Whether the project, started with this environment, routes /_simulator/ at all (and, when
    it does not, never loaded the simulator's code)."""
    code = (
        "import sys\n"
        "import django\n"
        "django.setup()\n"
        "from django.urls import Resolver404, resolve\n"
        "try:\n"
        "    name = resolve('/_simulator/_sim/requests').url_name\n"
        "except Resolver404:\n"
        "    name = 'not mounted'\n"
        "from copilot_admin import api_urls, celery  # the API, the worker: loaded either way\n"
        "loaded = 'copilot_admin.simulator.server' in sys.modules\n"
        "print(name if loaded == (name != 'not mounted') else 'loaded but not mounted')\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_SIMULATOR", "DJANGO_"))}
    environment.update(DJANGO_SETTINGS_MODULE="copilot_admin.settings", **env)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                            timeout=120, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_debug_alone_does_not_mount_the_simulator():
    assert _mounted_in_a_fresh_process(DJANGO_DEBUG="true") == "not mounted"
    assert _mounted_in_a_fresh_process(DJANGO_DEBUG="true", COPILOT_SIMULATOR="1") == "copilot-simulator"

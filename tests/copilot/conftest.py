"""Fixtures for the copilot service module: a real simulator on loopback, driven over HTTP.

Nothing here needs the database. One simulator serves the whole session (per xdist worker);
each test starts from `ok` behaviours and an empty request log.
"""

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest

from copilot_admin.copilot import azure
from copilot_admin.copilot.azure import DeploymentTarget
from copilot_admin.simulator.server import SimulatorControl, run_simulator_in_thread

API_KEY_ENV = "AZURE_OPENAI_KEY_TEST"
API_KEY = "test-key-not-a-secret"
API_VERSION = "2024-10-21"
SIM_TOKEN = "sim-control-token-for-tests"  # the control endpoints (request log, behaviours) need it


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    with run_simulator_in_thread(control_token=SIM_TOKEN) as url:
        yield url


@pytest.fixture
def sim(simulator_url: str) -> Iterator[SimulatorControl]:
    control = SimulatorControl(simulator_url, token=SIM_TOKEN)
    control.reset()
    yield control
    control.reset()


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    return API_KEY


@pytest.fixture
def make_target(simulator_url: str, api_key: str) -> Callable[..., DeploymentTarget]:
    def make(deployment: str = "gpt-4o-a", **overrides) -> DeploymentTarget:
        options = {
            "name": f"sim-{deployment}",
            "endpoint": simulator_url,
            "deployment": deployment,
            "api_version": API_VERSION,
            "auth_mode": "api_key",
            "api_key_env": API_KEY_ENV,
            "timeout_seconds": 5.0,
            "connect_timeout_seconds": 2.0,
        }
        options.update(overrides)
        return DeploymentTarget(**options)

    return make


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Callable[..., azure.CallResult]:
    """`call(targets=..., messages=..., feature=..., ...)` through the sync or the async variant."""
    if request.param == "sync":
        return azure.call_with_failover

    def run(**kwargs):
        return asyncio.run(azure.acall_with_failover(**kwargs))

    return run


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def limit_clock(monkeypatch: pytest.MonkeyPatch):
    """The call's limit counters on a clock that stands still, in the middle of a minute: a
    test that fills a per-minute limit must not see it reset because the wall clock crossed
    a minute boundary between its calls."""
    from datetime import UTC, datetime

    from copilot_admin.usage.counters import get_counter_backend
    from tests.usage.conftest import FakeClock

    clock = FakeClock(datetime.now(tz=UTC).replace(second=30, microsecond=0))
    monkeypatch.setattr(get_counter_backend(), "_clock", clock)
    return clock


@pytest.fixture
def access_cache_trips(monkeypatch: pytest.MonkeyPatch, settings) -> list[str]:
    """Every round trip to the default cache that touches the versioned reads' keys (reads and
    writes alike), by method name, counted at the backend's class so every context's instance
    (and every ORM-pool thread's) is seen."""
    from django.core.cache import caches

    trips: list[str] = []
    backend = type(caches["default"])
    prefix = settings.ACCESS_CACHE_KEY_PREFIX

    def counting(name: str) -> None:
        original = getattr(backend, name)

        def wrapper(self, keys, *args, **kwargs):
            names = list(keys) if isinstance(keys, (list, tuple, dict)) else [keys]
            if any(str(key).startswith(prefix) for key in names):
                trips.append(name)
            return original(self, keys, *args, **kwargs)

        monkeypatch.setattr(backend, name, wrapper)

    for name in ("get", "get_many", "set", "set_many", "add"):
        counting(name)
    return trips

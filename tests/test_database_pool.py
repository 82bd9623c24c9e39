"""Under ASGI (the Procfile's `web` process) PostgreSQL connections stay bounded by the pool.

Before: `DATABASE_CONN_MAX_AGE` 60 and no pool. Under uvicorn each request's sync work runs on a
thread of its own, and each such thread opened its own persistent connection, kept for 60 s
after the request: a worker serving 20 requests at a time held about 20 connections, more as
threads were replaced (the review saw 2 workers hold 69 idle connections until PostgreSQL
refused clients). With this test's load, 300 requests 20 at a time against 2 workers, the old
settings reach well over 2 x 3 connections.

Now each process has one psycopg pool of at most DATABASE_POOL_MAX_SIZE connections and a
request returns its connection when it ends. The test starts the real web process against the
test database with a pool of 3, samples pg_stat_activity (connections of that process only,
named by PGAPPNAME) all through the load, and asserts the count never exceeds 2 workers x 3,
and that every request was answered. No timing is asserted.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from knox.models import AuthToken

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
POOL_MAX_SIZE = 3
REQUESTS = 300
AT_ONCE = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url(settings_dict: dict) -> str:
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


def _conninfo(settings_dict: dict) -> str:
    return _database_url(settings_dict).replace("postgres://", "postgresql://", 1)


class ConnectionSampler(threading.Thread):
    """Counts, again and again until stopped, the connections one application holds."""

    def __init__(self, conninfo: str, application_name: str, database: str):
        super().__init__(daemon=True)
        self.conninfo, self.application_name, self.database = conninfo, application_name, database
        self.samples: list[int] = []
        self.stop = threading.Event()

    def count(self, db) -> int:
        return db.execute(
            "select count(*) from pg_stat_activity where datname = %s and application_name = %s",
            (self.database, self.application_name),
        ).fetchone()[0]

    def run(self):
        with psycopg.connect(self.conninfo, autocommit=True) as db:
            while not self.stop.is_set():
                self.samples.append(self.count(db))
                self.stop.wait(0.02)
            self.samples.append(self.count(db))


@pytest.fixture
def web_process(db):
    """The Procfile's `web` line on a free port against the test database, with a small pool."""
    require_service("PostgreSQL", connection.vendor == "postgresql",
                    "the web process needs the test's database on a server (DATABASE_URL=postgres://...)")
    settings_dict = connection.settings_dict
    port = _free_port()
    application_name = f"pool-test-{uuid.uuid4().hex[:8]}"
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = line.split(":", 1)[1].strip().replace("--host 0.0.0.0", "--host 127.0.0.1")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PORT": str(port), "WEB_CONCURRENCY": str(WORKERS),
        "DATABASE_URL": _database_url(settings_dict),
        "DATABASE_POOL_MIN_SIZE": "1", "DATABASE_POOL_MAX_SIZE": str(POOL_MAX_SIZE),
        "DATABASE_CONN_MAX_AGE": "60",  # the old default: ignored for PostgreSQL now
        "PGAPPNAME": application_name, "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to about a minute for the workers to start
            if process.poll() is not None:
                pytest.fail(f"the web process exited: {process.stderr.read()[-2000:]}")
            try:
                urllib.request.urlopen(f"{base_url}/login/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        else:
            pytest.fail("the web process did not start")
        yield base_url, application_name, settings_dict
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_many_asgi_requests_hold_a_bounded_number_of_connections(tenant_a, web_process):
    base_url, application_name, settings_dict = web_process
    _, token = AuthToken.objects.create(user=tenant_a.members["admin"].user)

    def get_users(_):
        request = urllib.request.Request(f"{base_url}/api/v1/tenants/alpha/users/",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:  # no answer (the old settings exhaust PostgreSQL's connections and hang)
            return 0

    sampler = ConnectionSampler(_conninfo(settings_dict), application_name, settings_dict["NAME"])
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=AT_ONCE) as requests:
            statuses = list(requests.map(get_users, range(REQUESTS)))
    finally:
        sampler.stop.set()
        sampler.join(timeout=30)

    assert max(sampler.samples) >= 1  # the sampler saw the web process's connections
    assert max(sampler.samples) <= WORKERS * POOL_MAX_SIZE, max(sampler.samples)
    assert statuses == [200] * REQUESTS

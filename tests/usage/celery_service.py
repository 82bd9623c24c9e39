"""A real Celery worker for the e-mail tests: `celery -A copilot_admin worker` as a subprocess
with a Redis broker, on the test's own PostgreSQL database, sending through a test SMTP server.

The worker consumes a queue of its own (a fresh name per run), so it never takes another
process's tasks; `use_broker()` points this process's Celery app at the same broker and queue
for the duration of a test, instead of running tasks in-process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from kombu import pools as kombu_pools

from copilot_admin.celery import app

ROOT = Path(__file__).resolve().parents[2]
BROKER_DATABASE = 13


def broker_url_for(redis_url: str) -> str:
    """The test Redis server, database 13 (kept apart from the cache and the counters)."""
    override = os.environ.get("TEST_CELERY_BROKER_URL")
    if override:
        return override
    parts = urlsplit(redis_url)
    return urlunsplit(parts._replace(path=f"/{BROKER_DATABASE}"))


def database_url_of(settings_dict: dict) -> str:
    """A DATABASE_URL for the database the tests use (PostgreSQL)."""
    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password)}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


class CeleryWorker:
    def __init__(self, *, broker_url: str, database_url: str, smtp_port: int, redis_url: str, log_path: Path) -> None:
        self.broker_url = broker_url
        self.queue = f"usage-test-{uuid.uuid4().hex[:12]}"
        self.log_path = log_path
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "EMAIL_"))},
            "DJANGO_SETTINGS_MODULE": "copilot_admin.settings",
            "DATABASE_URL": database_url,
            "DATABASE_CONN_MAX_AGE": "0",
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker_url,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "USAGE_EMAIL_RETRY_BACKOFF_SECONDS": "1",
            "USAGE_EMAIL_RETRY_BACKOFF_MAX_SECONDS": "2",
            "USAGE_EMAIL_MAX_RETRIES": "30",
            "LOG_LEVEL": "INFO",
        }
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 60) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "copilot_admin", "worker", "-Q", self.queue, "--pool", "prefork",
             "--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"{self.queue}@%h"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The Celery worker exited: {self.log()[-3000:]}")
            if "ready." in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError(f"The Celery worker did not start in {timeout}s: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pool_children(self) -> list[int]:
        """The prefork pool's processes (the children of the worker's main process)."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid:
                children.append(int(entry.name))
        return children

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()
        client = redis.Redis.from_url(self.broker_url, socket_connect_timeout=1)
        with contextlib.suppress(redis.RedisError):
            keys = [*client.scan_iter(match=f"*{self.queue}*"), self.queue]
            client.delete(*keys)
        client.close()


@contextlib.contextmanager
def running_worker(*, django_db_blocker, smtp_port: int, log_dir: Path, env: dict | None = None):
    """A real Celery worker on the test's PostgreSQL database and a Redis broker, for a module's
    tests (the fixtures of the e-mail and webhook delivery proofs); stopped on the way out."""
    from django.db import connection

    from tests.conftest import require_service
    from tests.usage.redis_service import require_redis

    with django_db_blocker.unblock():
        require_service("PostgreSQL", connection.vendor == "postgresql",
                        "the worker subprocess needs the test's database on a server (DATABASE_URL=postgres://...)")
        settings_dict = dict(connection.settings_dict)
    redis_url = require_redis()
    process = CeleryWorker(
        broker_url=broker_url_for(redis_url), database_url=database_url_of(settings_dict), smtp_port=smtp_port,
        redis_url=redis_url, log_path=log_dir / "worker.log",
    )
    process.env.update(env or {})
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _reset_connections() -> None:
    kombu_pools.reset()  # kombu keeps its pools per broker URL, process-wide
    app._pool = None
    with contextlib.suppress(AttributeError, KeyError):
        app.__dict__["amqp"]._producer_pool = None


@contextlib.contextmanager
def use_broker(worker: CeleryWorker):
    """This process's tasks go to the worker's broker and queue instead of running in-process."""
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager", "task_default_queue")}
    _reset_connections()
    app.conf.update(broker_url=worker.broker_url, task_always_eager=False, task_default_queue=worker.queue)
    try:
        yield
    finally:
        _reset_connections()
        app.conf.update(saved)

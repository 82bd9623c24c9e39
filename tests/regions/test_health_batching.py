"""Deployment health: failures at once, successes batched per process and deployment."""

import threading

import pytest

from copilot_admin.regions import services
from copilot_admin.regions.models import AzureDeployment
from tests.regions.fixtures import deployment_factory  # noqa: F401

LATENCIES = [120, 80, 300, 95]


@pytest.fixture
def batching(settings):
    settings.DEPLOYMENT_HEALTH_FLUSH_SECONDS = 3600  # the timer never fires within a test
    yield settings
    services.deployment_health_flush()


def two(deployment_factory, *, ewma=None):  # noqa: F811
    fields = {} if ewma is None else {"latency_ewma_ms": ewma}
    one = deployment_factory(zone="us", name="one", endpoint="https://one.openai.azure.com", **fields)
    other = deployment_factory(zone="us", name="other", endpoint="https://other.openai.azure.com", **fields)
    return one, other


def health(deployment):
    deployment.refresh_from_db()
    return (deployment.success_count, deployment.failure_count, deployment.last_latency_ms,
            round(deployment.latency_ewma_ms, 9) if deployment.latency_ewma_ms is not None else None)


@pytest.mark.parametrize("ewma", [None, 250.0])
def test_a_batch_writes_what_one_update_per_success_would_have(deployment_factory, settings, ewma):  # noqa: F811
    one, other = two(deployment_factory, ewma=ewma)
    settings.DEPLOYMENT_HEALTH_FLUSH_SECONDS = 0
    for latency in LATENCIES:
        services.deployment_health_record(name="other", ok=True, latency_ms=latency)
    settings.DEPLOYMENT_HEALTH_FLUSH_SECONDS = 3600
    for latency in LATENCIES:
        services.deployment_health_record(name="one", ok=True, latency_ms=latency)
    assert health(one) == (0, 0, None, ewma)  # nothing written yet
    services.deployment_health_flush()
    expected = ewma
    for latency in LATENCIES:  # the moving average, one attempt after another
        expected = latency if expected is None else expected * (1 - services.LATENCY_EWMA_ALPHA) + (
            services.LATENCY_EWMA_ALPHA * latency)
    assert health(one) == health(other) == (4, 0, 95, round(expected, 9))
    one.refresh_from_db()
    assert one.last_success_at is not None


def test_successes_are_one_statement_per_batch(deployment_factory, batching, django_assert_num_queries):  # noqa: F811
    two(deployment_factory)
    with django_assert_num_queries(0):
        for latency in LATENCIES:
            services.deployment_health_record(name="one", ok=True, latency_ms=latency)
    with django_assert_num_queries(1):
        services.deployment_health_flush()


def test_a_failure_is_written_at_once_after_the_pending_successes(deployment_factory, batching):  # noqa: F811
    one, other = two(deployment_factory)
    services.deployment_health_record(name="one", ok=True, latency_ms=100)
    services.deployment_health_record(name="one", ok=True, latency_ms=200)
    services.deployment_health_record(name="other", ok=True, latency_ms=50)
    services.deployment_health_record(name="one", ok=False, latency_ms=900, failure_code="upstream_timeout")
    one.refresh_from_db()
    assert (one.success_count, one.failure_count, one.last_failure_code, one.last_latency_ms) == (
        2, 1, "upstream_timeout", 900)
    assert health(other)[0] == 0  # another deployment's batch waits for its own timer


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_timer_writes_the_batch_from_its_own_thread(deployment_factory, settings, monkeypatch):  # noqa: F811
    """The batch's timer is started with the batch's first success; when it fires (here: fired
    by the test, in a thread of its own, so no clock decides), it writes the batch."""
    settings.DEPLOYMENT_HEALTH_FLUSH_SECONDS = 1
    timers = []

    class Recorded(threading.Timer):
        def start(self):  # recorded, fired below
            timers.append(self)

    def fire(timer):
        thread = threading.Thread(target=timer.function, args=timer.args)
        thread.start()
        thread.join()

    monkeypatch.setattr(services.threading, "Timer", Recorded)
    one, _ = two(deployment_factory)
    services.deployment_health_record(name="one", ok=True, latency_ms=100)
    services.deployment_health_record(name="one", ok=True, latency_ms=140)
    assert len(timers) == 1 and timers[0].interval == 1  # one timer per batch, not per success
    assert health(one)[:3] == (0, 0, None)
    fire(timers[0])
    assert health(one)[:3] == (2, 0, 140)
    services.deployment_health_record(name="one", ok=True, latency_ms=60)
    assert len(timers) == 2  # the next success starts the next batch
    fire(timers[1])
    assert health(one)[:3] == (3, 0, 60)


def test_a_missing_deployment_is_ignored(db, batching):
    services.deployment_health_record(name="gone", ok=True, latency_ms=10)
    services.deployment_health_flush()
    services.deployment_health_record(name="gone", ok=False, latency_ms=10, failure_code="error")
    assert not AzureDeployment.objects.filter(name="gone").exists()

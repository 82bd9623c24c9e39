"""Parallel copilot calls at a limit admit exactly the allowance, through the usage service
(the hooks the copilot call uses), on both counter stores; the bookkeeping around the
refusals stays exact too: the burst of refusals is one strike (a limit strikes once per
window), each warning threshold warns once, the roll-ups count every call."""

import threading

import pytest
from django.db import connection, connections

from copilot_admin.usage import services as usage
from copilot_admin.usage.models import AbuseCase, CopilotAccess, DailyUsage, LimitWarning, Strike, UsageOutcome
from tests.conftest import require_service
from tests.usage.helpers import set_policy
from tests.usage.redis_service import require_redis

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


THREADS = 60
ALLOWED = 20


@pytest.fixture(params=["redis", "database"])
def counter_store(request, settings):
    # The test database of SQLite is in memory with a shared cache, whose table locks do not
    # wait: many writing threads need a database server.
    require_service("PostgreSQL", connection.vendor == "postgresql", "threads writing at once need a database server")
    settings.REDIS_URL = require_redis() if request.param == "redis" else ""
    return request.param


def one_call(membership, index: int) -> bool:
    try:
        reservation = usage.limits_reserve(membership=membership, feature="summarize", estimated_tokens=10)
    except usage.RateLimitExceeded as refusal:
        assert refusal.status_code == 429 and refusal.retry_after >= 1  # the refusal still says when to retry
        usage.usage_record_create(membership=membership, feature="summarize", zone="us", limit=refusal.limit,
                                  outcome=UsageOutcome.REFUSED, request_id=f"p-{index}", error_code="rate_limited")
        return False
    usage.limits_settle(reservation=reservation, sent=True, prompt_tokens=7, completion_tokens=3)
    usage.usage_record_create(membership=membership, feature="summarize", zone="us", outcome=UsageOutcome.OK,
                              request_id=f"p-{index}", prompt_tokens=7, completion_tokens=3)
    return True


def test_parallel_calls_at_the_limit_admit_exactly_the_allowance(tenant_a, counter_store):
    # The daily request limit binds (a minute or hour boundary during the test cannot reset it).
    set_policy(user_requests_per_day=ALLOWED, warning_threshold_percent=50, strike_limit=2)
    tech = tenant_a.members["tech"]
    barrier = threading.Barrier(THREADS)
    results: list = [None] * THREADS
    errors: list = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = one_call(tech, index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    assert sum(results) == ALLOWED
    tenant = tenant_a.tenant
    day = DailyUsage.objects.for_tenant(tenant).get()
    assert (day.requests, day.rate_limited, day.prompt_tokens) == (ALLOWED, THREADS - ALLOWED, 7 * ALLOWED)
    # 50% (the tenant's lowest) and the platform's 80% and 95%: each once.
    assert sorted(LimitWarning.objects.for_tenant(tenant).values_list("threshold_percent", flat=True)) == [50, 80, 95]
    # Forty refusals inside one window: one strike, so two strikes do not suspend.
    assert list(Strike.objects.for_tenant(tenant).values_list("limit", flat=True)) == ["user_requests_per_day"]
    assert not AbuseCase.objects.for_tenant(tenant).exists()
    assert CopilotAccess.objects.for_tenant(tenant).get().status == "active"

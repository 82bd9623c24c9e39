"""The copilot call service: the access chain in the contract's order, routing inside the zone,
failover, recording (usage, audit, deployment health) and the limits hooks."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings

from copilot_admin.access.models import SecurityRole
from copilot_admin.copilot import services
from copilot_admin.copilot.services import CopilotError, copilot_invoke
from copilot_admin.core.errors import NotFound
from copilot_admin.regions.models import AzureDeployment
from copilot_admin.usage import services as usage
from copilot_admin.usage.models import UsageRecord
from tenants.models import TenantStatus
from tests.audit.conftest import entries
from tests.regions.fixtures import deployment_factory  # noqa: F401

FEATURES = ["summarize", "time-entry", "prioritize"]


def ticket(company, **issue):
    return {
        "company": str(company.pk),
        "contact": {"first_name": "Ana", "last_name": "Ruiz", "type": "customer"},
        "issue": {
            "summary": "Printer offline",
            "description": "The office printer stopped working this morning.",
            "conversation": [{"author": "contact", "body": "Still broken.", "at": "2026-11-20T10:00:00Z", "internal": False}],
            **issue,
        },
    }


@pytest.fixture
def us_deployment(deployment_factory, simulator_url, sim):
    return deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, priority=10)


def invoke(membership, feature="summarize", body=None, **kwargs):
    body = body if body is not None else ticket(_company(membership))
    return copilot_invoke(user=membership.user, membership=membership, feature=feature, body=body, **kwargs)


def _company(membership):
    from tenants.selectors import companies_in_scope

    return companies_in_scope(membership=membership).order_by("pk").first()


def audit_entries(tenant):
    return list(entries(tenant, action="copilot.call"))


# --- success and recording --------------------------------------------------------------------


@pytest.mark.parametrize("feature", FEATURES)
def test_success_returns_result_and_records_metadata(tenant_a, us_deployment, sim, feature):
    tech = tenant_a.members["tech"]
    answer = invoke(tech, feature)

    body = answer.as_response()
    expected = {"summarize": {"summary", "key_details", "next_steps"}, "time-entry": {"notes", "hours", "work_type"},
                "prioritize": {"priority", "rationale"}}[feature]
    assert set(body) == expected | {"request_id", "zone", "usage"}
    assert body["zone"] == "us" and body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0

    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert (record.user, record.membership, record.feature, record.zone, record.deployment, record.outcome) == (
        tech.user, tech, feature, "us", "us-primary", "ok")
    assert (record.prompt_tokens, record.completion_tokens) == (answer.prompt_tokens, answer.completion_tokens)
    assert record.request_id == answer.request_id and record.template_version == f"{feature}/v1"
    assert record.attempts == 1 and record.error_code == "" and record.upstream_request_id

    [entry] = audit_entries(tenant_a.tenant)
    assert (entry.actor_id, entry.object_type, entry.object_id, entry.outcome) == (tech.user_id, "copilot.feature", feature, "success")
    assert entry.metadata["request_id"] == answer.request_id and entry.metadata["deployment"] == "us-primary"
    assert entry.metadata["prompt_tokens"] == answer.prompt_tokens and entry.metadata["zone"] == "us"

    us_deployment.refresh_from_db()
    assert us_deployment.success_count == 1 and us_deployment.failure_count == 0
    assert us_deployment.last_success_at and us_deployment.last_latency_ms is not None and us_deployment.healthy


def test_limits_are_reserved_then_settled_with_the_tokens_used(tenant_a, us_deployment, monkeypatch):
    calls = []
    real_reserve = usage.limits_reserve
    monkeypatch.setattr(usage, "limits_reserve", lambda **kw: calls.append(("reserve", kw)) or real_reserve(**kw))
    monkeypatch.setattr(usage, "limits_settle", lambda **kw: calls.append(("settle", kw)))
    answer = invoke(tenant_a.members["tech"])
    assert [name for name, _ in calls] == ["reserve", "settle"]
    assert calls[0][1]["estimated_tokens"] > 0 and calls[0][1]["feature"] == "summarize"
    assert calls[1][1]["sent"] is True
    assert (calls[1][1]["prompt_tokens"], calls[1][1]["completion_tokens"]) == (answer.prompt_tokens, answer.completion_tokens)


# --- the access chain, in order ----------------------------------------------------------------

# Each step breaks one condition of the chain; applied from step k to the end, the call must
# be refused with step k's code: the first failure wins, whatever else is wrong.


def _suspend_tenant(world, membership, monkeypatch, body):
    world.tenant.status = TenantStatus.SUSPENDED
    world.tenant.save()


def _plan_without_copilot(world, membership, monkeypatch, body):
    world.tenant.plan = "itsm"
    world.tenant.save()


def _master_switch_off(world, membership, monkeypatch, body):
    world.tenant.copilot_enabled = False
    world.tenant.save()


def _feature_off(world, membership, monkeypatch, body):
    world.tenant.feature_switches = {**world.tenant.feature_switches, "summarize": False}
    world.tenant.save()


def _role_without_grant(world, membership, monkeypatch, body):
    role = SecurityRole.objects.for_tenant(world.tenant).create(
        tenant=world.tenant, name="No summaries", user_type="internal", permissions=["copilot.prioritize"]
    )
    membership.role = role
    membership.save()


def _access_suspended(world, membership, monkeypatch, body):
    monkeypatch.setattr(usage, "copilot_access_state", lambda m: "suspended")


def _foreign_company(world, membership, monkeypatch, body):
    body["company"] = str(body["foreign_company"])


def _company_inactive(world, membership, monkeypatch, body):
    world.companies[0].is_active = False
    world.companies[0].save()


def _over_limit(world, membership, monkeypatch, body):
    def refuse(**kwargs):
        raise usage.RateLimitExceeded(retry_after=42)

    monkeypatch.setattr(usage, "limits_reserve", refuse)


def _no_deployment(world, membership, monkeypatch, body):
    AzureDeployment.objects.update(active=False)


def _bad_payload(world, membership, monkeypatch, body):
    body["issue"]["summary"] = "   "


CHAIN = [
    ("tenant_suspended", 403, _suspend_tenant),
    ("not_entitled", 403, _plan_without_copilot),
    ("copilot_disabled", 403, _master_switch_off),
    ("feature_disabled", 403, _feature_off),
    ("permission_denied", 403, _role_without_grant),
    ("access_suspended", 403, _access_suspended),
    ("company_out_of_scope", 403, _foreign_company),
    ("company_inactive", 400, _company_inactive),
    ("rate_limited", 429, _over_limit),
    ("no_deployment_in_zone", 503, _no_deployment),
    ("invalid_payload", 400, _bad_payload),
]


@pytest.mark.parametrize("step", range(len(CHAIN)), ids=[code for code, _, _ in CHAIN])
def test_first_failure_of_the_chain_wins(tenant_a, tenant_b, us_deployment, sim, monkeypatch, step):
    tech = tenant_a.members["tech"]
    body = ticket(tenant_a.companies[0])
    body["foreign_company"] = tenant_b.companies[0].pk
    for _, _, breaker in CHAIN[step:]:
        breaker(tenant_a, tech, monkeypatch, body)
    tech.refresh_from_db()
    code, status, _ = CHAIN[step]
    with pytest.raises(CopilotError) as refused:
        copilot_invoke(user=tech.user, tenant_slug="alpha", feature="summarize", body=body)
    assert (refused.value.code, refused.value.status_code) == (code, status)
    assert sim.requests() == []  # nothing was sent upstream
    [entry] = audit_entries(tenant_a.tenant)
    assert entry.outcome == "denied" and entry.metadata["outcome"] == code
    # Usage records start where the access checks end (the limits).
    admitted = code in ("rate_limited", "no_deployment_in_zone", "invalid_payload")
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).count() == (1 if admitted else 0)
    if code == "rate_limited":
        assert refused.value.retry_after == 42


def test_access_terminated(tenant_a, us_deployment, monkeypatch):
    monkeypatch.setattr(usage, "copilot_access_state", lambda m: "terminated")
    with pytest.raises(CopilotError) as refused:
        invoke(tenant_a.members["tech"])
    assert (refused.value.code, refused.value.status_code) == ("access_terminated", 403)


def test_not_authenticated_and_not_a_member(tenant_a, tenant_b, us_deployment):
    from django.contrib.auth.models import AnonymousUser

    body = ticket(tenant_a.companies[0])
    with pytest.raises(CopilotError) as refused:
        copilot_invoke(user=AnonymousUser(), tenant_slug="alpha", feature="summarize", body=body)
    assert (refused.value.code, refused.value.status_code) == ("not_authenticated", 401)
    for user, slug in [(tenant_b.members["admin"].user, "alpha"), (tenant_a.members["tech"].user, "no-such-tenant")]:
        with pytest.raises(NotFound):
            copilot_invoke(user=user, tenant_slug=slug, feature="summarize", body=body)
    inactive = tenant_a.members["tech"]
    inactive.is_active = False
    inactive.save()
    with pytest.raises(NotFound):
        copilot_invoke(user=inactive.user, tenant_slug="alpha", feature="summarize", body=body)
    assert audit_entries(tenant_a.tenant) == []  # strangers leave nothing in the tenant's log


def test_payload_too_large_and_released_reservation(tenant_a, us_deployment, sim, monkeypatch):
    settled = []
    monkeypatch.setattr(usage, "limits_settle", lambda **kw: settled.append(kw))
    with pytest.raises(CopilotError) as refused:
        invoke(tenant_a.members["tech"], body=ticket(tenant_a.companies[0], summary="x" * 5000))
    assert (refused.value.code, refused.value.status_code) == ("payload_too_large", 413)
    assert refused.value.fields == {"issue.summary": ["payload_too_large"]}
    assert [kw["sent"] for kw in settled] == [False] and sim.requests() == []
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).get().outcome == "refused"


@pytest.mark.parametrize("company", [None, "", "abc", "1.5", True, [], "9" * 19])
def test_malformed_company_is_a_bad_request(tenant_a, us_deployment, company):
    body = ticket(tenant_a.companies[0])
    body["company"] = company
    with pytest.raises(CopilotError) as refused:
        invoke(tenant_a.members["tech"], body=body)
    assert (refused.value.code, refused.value.status_code) == ("invalid_payload", 400)


def test_company_as_integer_is_accepted(tenant_a, us_deployment):
    body = ticket(tenant_a.companies[0])
    body["company"] = tenant_a.companies[0].pk
    assert invoke(tenant_a.members["tech"], body=body).zone == "us"


# --- co-managed users ----------------------------------------------------------------------------


def test_co_managed_user_only_on_the_companies_it_co_manages(tenant_a, tenant_b, us_deployment, sim):
    comanaged = tenant_a.members["comanaged"]
    own, other_co_managed, not_co_managed = tenant_a.companies
    assert invoke(comanaged, body=ticket(own)).zone == "us"
    bodies = []
    for company_id in (other_co_managed.pk, not_co_managed.pk, tenant_b.companies[0].pk, 999_999_999):
        body = ticket(own)
        body["company"] = str(company_id)
        with pytest.raises(CopilotError) as refused:
            invoke(comanaged, body=body)
        bodies.append(refused.value.body())
    assert all(b == {"error": {"code": "company_out_of_scope", "message": "The client company is not in your scope."}}
               for b in bodies)
    assert len(sim.requests()) == 1
    # Internal users may use every company of their tenant, never another tenant's.
    tech = tenant_a.members["tech"]
    assert invoke(tech, body=ticket(not_co_managed)).zone == "us"
    with pytest.raises(CopilotError):
        invoke(tech, body=ticket(tenant_b.companies[0]))


# --- routing: priority, failover inside the zone, never another zone --------------------------------


def test_failover_to_the_next_deployment_of_the_zone(tenant_a, deployment_factory, simulator_url, sim):
    first = deployment_factory(zone="us", name="us-1", endpoint=simulator_url, deployment="dep-us-1", priority=1)
    second = deployment_factory(zone="us", name="us-2", endpoint=simulator_url, deployment="dep-us-2", priority=2)
    deployment_factory(zone="us", name="us-off", endpoint=simulator_url, deployment="dep-us-off", priority=0, active=False)
    sim.set_behaviour("503", deployment="dep-us-1")
    answer = invoke(tenant_a.members["tech"])
    assert answer.deployment == "us-2"
    assert [r["deployment"] for r in sim.requests()] == ["dep-us-1", "dep-us-2"]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.failure_count, first.last_failure_code, first.healthy) == (1, "server_error", False)
    assert (second.success_count, second.healthy) == (1, True)
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert (record.attempts, record.deployment, record.outcome) == (2, "us-2", "ok")


def test_calls_never_leave_the_zone(tenant_a, tenant_b, deployment_factory):
    """Two simulators, one per zone, each recording what it received."""
    from copilot_admin.simulator.server import SimulatorControl, run_simulator_in_thread
    from tests.copilot.conftest import SIM_TOKEN

    with run_simulator_in_thread(control_token=SIM_TOKEN) as us_url, run_simulator_in_thread(control_token=SIM_TOKEN) as eu_url:
        us_sim, eu_sim = SimulatorControl(us_url, token=SIM_TOKEN), SimulatorControl(eu_url, token=SIM_TOKEN)
        deployment_factory(zone="us", name="us-a", endpoint=us_url, deployment="us-a", priority=1)
        deployment_factory(zone="us", name="us-b", endpoint=us_url, deployment="us-b", priority=2)
        deployment_factory(zone="eu", name="eu-a", endpoint=eu_url, deployment="eu-a", priority=0)
        tenant_b.tenant.zone_id = AzureDeployment.objects.get(name="eu-a").zone_id
        tenant_b.tenant.save()

        assert invoke(tenant_a.members["tech"]).zone == "us"
        assert invoke(tenant_b.members["tech"]).zone == "eu"
        assert [r["deployment"] for r in us_sim.requests()] == ["us-a"]
        assert [r["deployment"] for r in eu_sim.requests()] == ["eu-a"]

        # Every us deployment fails: the call fails; the healthy eu deployment is never tried.
        us_sim.set_behaviour("503")
        with pytest.raises(CopilotError) as failed:
            invoke(tenant_a.members["tech"])
        assert (failed.value.code, failed.value.status_code) == ("upstream_unavailable", 503)
        assert [r["deployment"] for r in us_sim.requests()] == ["us-a", "us-a", "us-b"]
        assert [r["deployment"] for r in eu_sim.requests()] == ["eu-a"]


def test_no_deployment_in_zone(tenant_a, deployment_factory, simulator_url, sim):
    deployment_factory(zone="eu", name="eu-only", endpoint=simulator_url)
    with pytest.raises(CopilotError) as refused:
        invoke(tenant_a.members["tech"])
    assert (refused.value.code, refused.value.status_code) == ("no_deployment_in_zone", 503)
    assert sim.requests() == []
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert (record.outcome, record.error_code, record.zone) == ("refused", "no_deployment_in_zone", "us")


# --- upstream failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode,code,status", [
    ("429", "rate_limited", 429),
    ("500", "upstream_unavailable", 503),
    ("content_filter_prompt", "content_filtered", 422),
    ("content_filter_completion", "content_filtered", 422),
    ("invalid_json", "upstream_error", 502),
])
def test_upstream_failure_is_recorded(tenant_a, us_deployment, sim, mode, code, status):
    sim.set_behaviour(mode, retry_after=3)
    with pytest.raises(CopilotError) as failed:
        invoke(tenant_a.members["tech"])
    assert (failed.value.code, failed.value.status_code) == (code, status)
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert (record.outcome, record.error_code, record.deployment, record.attempts) == ("failed", code, "us-primary", 1)
    [entry] = audit_entries(tenant_a.tenant)
    assert entry.outcome == "failure" and entry.metadata["outcome"] == code
    assert failed.value.extra["request_id"] == record.request_id
    if code == "rate_limited":
        assert failed.value.retry_after == 3
    if code == "content_filtered":
        assert entry.metadata["stage"] == failed.value.extra["stage"] and entry.metadata["categories"] == ["violence"]
    us_deployment.refresh_from_db()
    assert us_deployment.failure_count == 1


# --- the async variant -------------------------------------------------------------------------------


def test_async_invoke_in_the_caller_thread(tenant_a, us_deployment):
    tech = tenant_a.members["tech"]
    answer = async_to_sync(services.acopilot_invoke)(
        user=tech.user, tenant_slug="alpha", feature="prioritize", body=ticket(tenant_a.companies[0]), caller_thread=True
    )
    assert answer.output["priority"] in ("critical", "high", "medium", "low")
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).get().request_id == answer.request_id


@pytest.fixture
def orm_pool():
    yield
    services.orm_pool_shutdown()  # its threads' connections close with them


@pytest.mark.skipif("sqlite" in django_settings.DATABASES["default"]["ENGINE"],
                    reason="concurrent writers on SQLite's shared in-memory test database lock each other's tables")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_async_invoke_on_the_orm_pool_holds_no_thread_while_waiting(tenant_a, us_deployment, sim, orm_pool, settings):
    """The pool path (ASGI): ten concurrent calls to a slow upstream overlap on a pool of two
    threads. Counted, not timed: the upstream saw more calls in flight at once than the pool has
    threads, so no thread was held while a call waited (the wall time is in `make bench`)."""
    settings.COPILOT_ORM_THREADS = 2
    services.orm_pool_shutdown()
    sim.set_behaviour("slow", delay_ms=1000)
    tech = tenant_a.members["tech"]

    async def many():
        return await asyncio.gather(*[
            services.acopilot_invoke(user=tech.user, tenant_slug="alpha", feature="summarize",
                                     body=ticket(tenant_a.companies[0]))
            for _ in range(10)
        ])

    answers = asyncio.run(many())
    assert len({a.request_id for a in answers}) == 10
    assert sim.stats()["peak_in_flight"] > settings.COPILOT_ORM_THREADS
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).filter(outcome="ok").count() == 10

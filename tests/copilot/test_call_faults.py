"""Faults after admission: whatever is raised once the limits reservation is taken (an
unreadable Retry-After, an unexpected exception of any type, the caller going away), the
reservation is settled exactly once, the call is recorded, and the client gets a contract
error, never a 500 (DESIGN.md "The call's bookkeeping is one unit")."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse

from copilot_admin.audit.models import AuditEntry
from copilot_admin.copilot import azure, services
from copilot_admin.copilot.services import CopilotError, copilot_invoke
from copilot_admin.usage import services as usage
from copilot_admin.usage.admission import call_check
from copilot_admin.usage.counters import get_counter_backend
from copilot_admin.usage.models import DailyUsage, UsageRecord
from copilot_admin.usage.selectors import effective_limits
from tests.conftest import api_client_for
from tests.regions.fixtures import deployment_factory  # noqa: F401

URL = "api:copilot-summarize"


def ticket(company):
    return {
        "company": str(company.pk),
        "contact": {"first_name": "Ana", "last_name": "Ruiz", "type": "customer"},
        "issue": {"summary": "Printer offline", "description": "The office printer stopped this morning.",
                  "conversation": [{"author": "contact", "body": "Still broken.", "at": "2026-11-20T10:00:00Z",
                                    "internal": False}]},
    }


@pytest.fixture
def us_deployment(deployment_factory, simulator_url, sim):  # noqa: F811
    return deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, priority=10)


@pytest.fixture
def ledger(monkeypatch):
    """Every reservation and settlement the call makes, through the real limit hooks."""
    book = {"estimates": [], "settlements": []}
    reserve, settle = usage.limits_reserve, usage.limits_settle

    def reserving(**kwargs):
        book["estimates"].append(kwargs["estimated_tokens"])
        return reserve(**kwargs)

    def settling(**kwargs):
        book["settlements"].append(kwargs)
        return settle(**kwargs)

    monkeypatch.setattr(usage, "limits_reserve", reserving)
    monkeypatch.setattr(usage, "limits_settle", settling)
    return book


def counters(membership) -> dict[str, int]:
    """What the limit counters hold now for the member: requests this minute, tokens today."""
    check = call_check(membership=membership, limits=effective_limits(membership.tenant), estimated_tokens=0)
    minute, _hour, _day, user_tokens, tenant_tokens = get_counter_backend().current(windows=check.windows)
    return {"requests": minute.used_after, "user_tokens": user_tokens.used_after,
            "tenant_tokens": tenant_tokens.used_after}


def call_entries(tenant):
    return list(AuditEntry.objects.for_tenant(tenant).filter(action="copilot.call"))


# --- an upstream 429 whose Retry-After is neither a number nor a date ------------------------------


def test_upstream_429_with_retry_after_soon_is_a_rate_limit_settled_and_recorded(tenant_a, us_deployment, sim, ledger):
    tech = tenant_a.members["tech"]
    sim.set_behaviour("429", retry_after="soon")
    with pytest.raises(CopilotError) as failed:
        copilot_invoke(user=tech.user, membership=tech, feature="summarize", body=ticket(tenant_a.companies[0]))
    assert (failed.value.status_code, failed.value.code, failed.value.retry_after) == (429, "rate_limited", 1)
    assert len(ledger["settlements"]) == 1 and ledger["settlements"][0]["sent"] is True
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert (record.outcome, record.error_code) == ("failed", "rate_limited")
    assert counters(tech) == {"requests": 1, "user_tokens": 0, "tenant_tokens": 0}  # a 429 used no tokens
    [entry] = call_entries(tenant_a.tenant)
    assert entry.outcome == "failure" and entry.metadata["outcome"] == "rate_limited"


def test_upstream_429_with_retry_after_soon_through_the_api(tenant_a, us_deployment, sim):
    sim.set_behaviour("429", retry_after="soon")
    response = api_client_for(tenant_a.members["tech"].user).post(
        reverse(URL, kwargs={"tenant_slug": "alpha"}), ticket(tenant_a.companies[0]), format="json")
    assert response.status_code == 429, response.content[:300]
    assert response.json()["error"]["code"] == "rate_limited" and response["Retry-After"] == "1"
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).get().error_code == "rate_limited"


# --- any exception after admission ----------------------------------------------------------------


def _raise_key_error(*args, **kwargs):
    raise KeyError("injected")


class _FailOnce:
    """Raises on the first call only, then behaves like the real function."""

    def __init__(self, real):
        self.real, self.failed = real, False

    def __call__(self, *args, **kwargs):
        if not self.failed:
            self.failed = True
            raise KeyError("injected")
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("where", ["prompt_rendering", "deployment_lookup", "upstream_client", "recording"])
def test_an_unexpected_exception_after_admission_is_a_502_settled_once_and_recorded(
    tenant_a, us_deployment, sim, ledger, monkeypatch, where,
):
    tech = tenant_a.members["tech"]
    if where == "prompt_rendering":  # a template bug: held until after the limits, then ends the call
        monkeypatch.setattr(services, "render_messages", _raise_key_error)
    elif where == "deployment_lookup":
        monkeypatch.setattr(services, "deployments_for_zone", _raise_key_error)
    elif where == "upstream_client":  # a bug in the client wrapper, like the Retry-After one was
        monkeypatch.setattr(azure, "call_with_failover", _raise_key_error)
    else:  # the answer came back; recording it failed (rolled back), so it is recorded as an error
        monkeypatch.setattr(usage, "usage_record_create", _FailOnce(usage.usage_record_create))

    with pytest.raises(CopilotError) as failed:
        copilot_invoke(user=tech.user, membership=tech, feature="summarize", body=ticket(tenant_a.companies[0]))

    assert (failed.value.status_code, failed.value.code) == (502, "upstream_error")
    assert failed.value.body()["error"]["request_id"]
    assert len(ledger["settlements"]) == 1
    [estimate] = ledger["estimates"]
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert (record.outcome, record.error_code) == ("error", "internal_error")
    assert record.request_id == failed.value.extra["request_id"]
    [entry] = call_entries(tenant_a.tenant)
    assert entry.outcome == "failure" and entry.metadata["outcome"] == "internal_error"
    if where in ("prompt_rendering", "deployment_lookup"):  # nothing was sent: released
        assert counters(tech) == {"requests": 0, "user_tokens": 0, "tenant_tokens": 0}
        assert sim.requests() == []
    elif where == "upstream_client":  # it may have been sent; tokens unknown: the estimate is kept
        assert counters(tech) == {"requests": 1, "user_tokens": estimate, "tenant_tokens": estimate}
    else:  # the tokens used are known
        used = record.prompt_tokens + record.completion_tokens
        assert used > 0 and counters(tech) == {"requests": 1, "user_tokens": used, "tenant_tokens": used}


def test_an_unexpected_exception_through_the_api_is_a_502_in_the_contract_shape(tenant_a, us_deployment, monkeypatch):
    async def broken(**kwargs):
        raise KeyError("injected")

    monkeypatch.setattr(azure, "acall_with_failover", broken)
    response = api_client_for(tenant_a.members["tech"].user).post(
        reverse(URL, kwargs={"tenant_slug": "alpha"}), ticket(tenant_a.companies[0]), format="json")
    assert response.status_code == 502, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "upstream_error" and error["message"]
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert (record.outcome, record.request_id) == ("error", error["request_id"])


def test_a_fault_never_logs_its_message(tenant_a, us_deployment, monkeypatch, caplog):
    """Only the type and the code location: a message may quote ticket or model text."""
    canary = "-".join(["CANARY", "fault", "message"])

    def broken(**kwargs):
        raise KeyError(canary)

    monkeypatch.setattr(azure, "call_with_failover", broken)
    tech = tenant_a.members["tech"]
    with pytest.raises(CopilotError):
        copilot_invoke(user=tech.user, membership=tech, feature="summarize", body=ticket(tenant_a.companies[0]))
    assert "KeyError" in caplog.text and "CANARY" not in caplog.text


def test_a_second_conclusion_settles_and_records_nothing(tenant_a, us_deployment, sim, ledger):
    tech = tenant_a.members["tech"]
    call = services.copilot_admit(user=tech.user, membership=tech, feature="summarize",
                                  body=ticket(tenant_a.companies[0]))
    services.copilot_abandon(call)
    services.copilot_abandon(call)
    assert services.copilot_fail(call, KeyError("late")).code == "upstream_error"
    assert len(ledger["settlements"]) == 1
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).count() == 1


# --- the caller goes away mid-call ----------------------------------------------------------------


def test_a_client_disconnecting_mid_call_keeps_the_estimate_and_is_recorded(tenant_a, us_deployment, ledger,
                                                                             monkeypatch):
    """The view's task is cancelled while the upstream holds the call (an Event-controlled fake)."""
    tech = tenant_a.members["tech"]

    async def scenario():
        upstream_reached = asyncio.Event()
        never = asyncio.Event()

        async def slow_upstream(**kwargs):
            upstream_reached.set()
            await never.wait()

        monkeypatch.setattr(azure, "acall_with_failover", slow_upstream)
        task = asyncio.ensure_future(services.acopilot_invoke(
            user=tech.user, tenant_slug="alpha", feature="summarize", body=ticket(tenant_a.companies[0]),
            caller_thread=True,
        ))
        await upstream_reached.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async_to_sync(scenario)()

    [estimate] = ledger["estimates"]
    assert estimate > 0 and len(ledger["settlements"]) == 1
    assert counters(tech) == {"requests": 1, "user_tokens": estimate, "tenant_tokens": estimate}
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert (record.outcome, record.error_code) == ("cancelled", "client_disconnected")
    [entry] = call_entries(tenant_a.tenant)
    assert entry.outcome == "failure" and entry.metadata["outcome"] == "client_disconnected"
    assert entry.metadata["estimated_tokens"] == estimate
    day = DailyUsage.objects.for_tenant(tenant_a.tenant).get()
    assert (day.requests, day.failed) == (1, 1)


def test_a_client_disconnecting_while_the_call_is_admitted_still_records_it(tenant_a, us_deployment, ledger,
                                                                           monkeypatch):
    """Cancelled during the admission hop: the admission runs to its end, then the call is
    recorded as cancelled instead of leaving a reservation nobody settles."""
    tech = tenant_a.members["tech"]
    upstream_calls = []

    async def upstream(**kwargs):
        upstream_calls.append(kwargs)

    monkeypatch.setattr(azure, "acall_with_failover", upstream)
    real_admit = services.copilot_admit

    async def scenario():
        admitting = asyncio.Event()
        loop = asyncio.get_running_loop()
        proceed = asyncio.Event()

        def admit(**kwargs):
            loop.call_soon_threadsafe(admitting.set)
            asyncio.run_coroutine_threadsafe(proceed.wait(), loop).result()
            return real_admit(**kwargs)

        monkeypatch.setattr(services, "copilot_admit", admit)
        task = asyncio.ensure_future(services.acopilot_invoke(
            user=tech.user, tenant_slug="alpha", feature="summarize", body=ticket(tenant_a.companies[0]),
            caller_thread=True,
        ))
        await admitting.wait()
        task.cancel()
        await asyncio.sleep(0)  # the cancellation reaches the task while admission is still held
        proceed.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    async_to_sync(scenario)()

    assert upstream_calls == []
    [estimate] = ledger["estimates"]
    assert len(ledger["settlements"]) == 1
    assert counters(tech) == {"requests": 1, "user_tokens": estimate, "tenant_tokens": estimate}
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).get().outcome == "cancelled"

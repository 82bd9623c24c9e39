"""The Azure OpenAI client wrapper, driven through the real openai SDK against the simulator.

Every test runs the sync and the async variant (`call` fixture) unless it says otherwise.
"""

import asyncio
import hashlib
import json
import logging
import time

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from copilot_admin.copilot import azure
from copilot_admin.copilot.azure import (
    ConfigurationError,
    ContentFiltered,
    DeploymentTarget,
    RateLimited,
    UpstreamError,
    UpstreamFailure,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from copilot_admin.copilot.features import FEATURES
from copilot_admin.copilot.minimize import minimize_payload
from copilot_admin.copilot.prompts import render_messages
from copilot_admin.simulator.server import SimulatorControl, SimulatorState, run_simulator_in_thread

from .conftest import API_KEY, API_KEY_ENV

ALLOWED = "CANARY-allowed-5d2e"
DISALLOWED = "CANARY-disallowed-b81f"
ENTRA_TOKEN = "stub-entra-token-1234"


def sha16(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def ticket_body() -> dict:
    """Allowed fields carry ALLOWED, disallowed ones DISALLOWED, at every level."""
    return {
        "company": f"7-{DISALLOWED}",
        "contact": {
            "first_name": f"Ana {ALLOWED}",
            "last_name": f"Ruiz {ALLOWED}",
            "type": f"customer {ALLOWED}",
            "email": f"{DISALLOWED}@example.com",
        },
        "issue": {
            "summary": f"Printer offline {ALLOWED}",
            "description": f"Floor 2 printer {ALLOWED}",
            "billing_code": DISALLOWED,
            "conversation": [
                {"author": f"contact {ALLOWED}", "body": f"Error 49 {ALLOWED}", "at": "2026-11-20T10:00:00Z",
                 "internal": False, "attachment": DISALLOWED},
                {"author": "tech", "body": f"Internal: {DISALLOWED}", "at": "2026-11-20T10:05:00Z", "internal": True},
            ],
        },
        "notes": DISALLOWED,
    }


def messages_for(feature: str = "summarize"):
    return render_messages(feature=feature, payload=minimize_payload(body=ticket_body()))


class StubCredential:
    """A sync token credential that hands out a fixed token and remembers the scopes asked."""

    def __init__(self, token: str = ENTRA_TOKEN) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


class AsyncStubCredential(StubCredential):
    async def get_token(self, *scopes, **kwargs) -> AccessToken:  # type: ignore[override]
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        pass


class FailingCredential:
    def get_token(self, *scopes, **kwargs) -> AccessToken:
        raise ClientAuthenticationError(message="no managed identity here")


def deployments_called(sim: SimulatorControl) -> list[str]:
    return [r["deployment"] for r in sim.requests()]


# --- success ------------------------------------------------------------------------------


@pytest.mark.parametrize("feature", list(FEATURES))
def test_success_returns_the_validated_answer_and_usage_metadata(call, sim, make_target, feature):
    target = make_target()
    messages = messages_for(feature)

    result = call(targets=[target], messages=messages, feature=feature)

    assert FEATURES[feature].validate(result.output) == result.output
    (recorded,) = sim.requests()
    assert result.request_id == recorded["request_id"]
    assert result.target == target
    assert result.model == "gpt-4o-2024-08-06"
    assert result.prompt_tokens == sum(len(m["content"]) for m in messages) // 4
    assert result.completion_tokens > 0
    assert 0 <= result.latency_ms <= result.total_latency_ms
    assert [(a.deployment, a.outcome, a.status_code) for a in result.attempts] == [(target.name, "ok", 200)]


def test_the_request_is_an_azure_chat_completion_with_strict_structured_output(call, sim, make_target):
    messages = messages_for("prioritize")
    call(targets=[make_target("gpt-4o-eu")], messages=messages, feature="prioritize")

    (recorded,) = sim.requests()
    assert recorded["path"] == "/openai/deployments/gpt-4o-eu/chat/completions"
    assert recorded["query"] == {"api-version": "2024-10-21"}
    assert recorded["auth"] == {"scheme": "api-key", "sha256": sha16(API_KEY)}
    assert "api-key" not in recorded["headers"] and "authorization" not in recorded["headers"]
    assert recorded["headers"]["x-stainless-retry-count"] == "0"
    body = recorded["body"]
    assert body["messages"] == messages
    assert body["response_format"] == FEATURES["prioritize"].response_format()
    assert body["max_completion_tokens"] == FEATURES["prioritize"].max_completion_tokens


@pytest.mark.parametrize("feature", list(FEATURES))
def test_the_async_path_sends_what_the_sdks_chat_completions_create_sends(sim, make_target, feature):
    """The async call posts its body through `client.post` (no per-call parameter transform):
    the request Azure receives is the same as through `chat.completions.create`."""
    target = make_target("gpt-4o-eu")
    messages = messages_for(feature)
    spec = FEATURES[feature]

    async def both():
        await azure.acall_with_failover(targets=[target], messages=messages, feature=feature)
        client = azure._new_async_client(target, None)
        try:
            kwargs = azure._request_kwargs(target=target, messages=messages, spec=spec, remaining=None)
            await client.chat.completions.with_raw_response.create(**kwargs)
        finally:
            await client.close()

    asyncio.run(both())
    ours, sdk = sim.requests()
    for key in ("path", "query", "auth", "body"):
        assert ours[key] == sdk[key], key
    volatile = {"x-stainless-read-timeout", "x-request-id", "x-stainless-raw-response", "content-length"}
    assert {k: v for k, v in ours["headers"].items() if k not in volatile} == {
        k: v for k, v in sdk["headers"].items() if k not in volatile}


def test_the_async_path_keeps_one_client_per_deployment_on_aiohttp_sized_for_500_in_flight(sim, make_target):
    from django.conf import settings

    assert settings.COPILOT_UPSTREAM_MAX_CONNECTIONS >= 500  # the deployments' max_connections (targets.py)
    one, other = make_target("gpt-4o-a"), make_target("gpt-4o-b")
    messages = messages_for("summarize")

    async def calls():
        for target in (one, other, one, other):
            await azure.acall_with_failover(targets=[target], messages=messages, feature="summarize")
        clients = list(azure._async_clients[asyncio.get_running_loop()].clients.values())
        limits = [client._client._transport.client.connector.limit for client in clients]
        await azure.aclose_clients()
        return clients, limits

    clients, limits = asyncio.run(calls())
    assert len(clients) == 2
    assert all(isinstance(client._client, azure.openai.DefaultAioHttpClient) for client in clients)
    assert limits == [500, 500]


def test_same_ticket_same_answer(call, sim, make_target):
    first = call(targets=[make_target()], messages=messages_for(), feature="summarize")
    second = call(targets=[make_target()], messages=messages_for(), feature="summarize")
    assert first.output == second.output
    assert first.request_id != second.request_id


# --- every error shape ----------------------------------------------------------------------

ERROR_SHAPES = [
    # mode, error class, reason, code, http status, retryable
    ("content_filter_prompt", ContentFiltered, "content_filtered", "content_filtered", 422, False),
    ("content_filter_completion", ContentFiltered, "content_filtered", "content_filtered", 422, False),
    ("filter_error", UpstreamError, "content_filter_unavailable", "upstream_error", 502, True),
    ("prompt_filter_error", UpstreamError, "content_filter_unavailable", "upstream_error", 502, True),
    ("429", RateLimited, "rate_limited", "upstream_unavailable", 503, True),
    ("500", UpstreamUnavailable, "server_error", "upstream_unavailable", 503, True),
    ("503", UpstreamUnavailable, "server_error", "upstream_unavailable", 503, True),
    ("timeout", UpstreamTimeout, "timeout", "upstream_timeout", 504, True),
    ("invalid_json", UpstreamError, "invalid_output", "upstream_error", 502, False),
    ("schema_mismatch", UpstreamError, "invalid_output", "upstream_error", 502, False),
]


@pytest.mark.parametrize(("mode", "error", "reason", "code", "status", "retryable"), ERROR_SHAPES)
def test_each_error_shape_is_mapped(call, sim, make_target, mode, error, reason, code, status, retryable):
    sim.set_behaviour(mode)
    target = make_target(timeout_seconds=0.5)

    with pytest.raises(error) as caught:
        call(targets=[target], messages=messages_for(), feature="summarize")

    failure = caught.value
    assert type(failure) is error
    assert (failure.reason, failure.code, failure.http_status, failure.retryable) == (reason, code, status, retryable)
    assert failure.deployment == target.name
    assert [a.outcome for a in failure.attempts] == [reason]
    # One request only: the SDK's own retries are off.
    assert deployments_called(sim) == [target.deployment]
    if mode != "timeout":
        assert failure.request_id == sim.requests()[0]["request_id"]


def test_prompt_filter_names_the_categories(call, sim, make_target):
    sim.set_behaviour("content_filter_prompt", categories=["violence", "jailbreak"])
    with pytest.raises(ContentFiltered) as caught:
        call(targets=[make_target()], messages=messages_for(), feature="summarize")
    assert caught.value.stage == "prompt"
    assert caught.value.categories == ("jailbreak", "violence")
    assert caught.value.status_code == 400


def test_completion_filter_names_the_categories_and_keeps_the_token_counts(call, sim, make_target):
    sim.set_behaviour("content_filter_completion", categories=["self_harm"])
    with pytest.raises(ContentFiltered) as caught:
        call(targets=[make_target()], messages=messages_for(), feature="summarize")
    assert caught.value.stage == "completion"
    assert caught.value.categories == ("self_harm",)
    assert caught.value.prompt_tokens > 0
    assert caught.value.attempts[0].prompt_tokens == caught.value.prompt_tokens


def test_invalid_output_names_the_problem_not_the_answer(call, sim, make_target):
    sim.set_behaviour("schema_mismatch", echo=True)
    with pytest.raises(UpstreamError) as caught:
        call(targets=[make_target()], messages=messages_for(), feature="summarize")
    assert "summarize: answer has unexpected fields" in str(caught.value)
    assert caught.value.prompt_tokens > 0 and caught.value.completion_tokens > 0


def _response(choice: dict | None = None, **top) -> bytes:
    base = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "choices": [choice] if choice is not None else [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        **top,
    }
    return json.dumps(base).encode()


GOOD_ANSWER = json.dumps({"priority": "low", "rationale": "A question."})


@pytest.mark.parametrize(
    ("content", "reason", "retryable"),
    [
        (b"<html>proxy error</html>", "invalid_response", False),
        (b"[]", "invalid_response", False),
        (_response(None), "invalid_response", False),
        (_response({"finish_reason": "length", "message": {"content": "{"}}), "output_truncated", False),
        (_response({"finish_reason": "stop", "message": {"content": None, "refusal": "No."}}), "model_refused", False),
        (_response({"finish_reason": "stop", "message": {"content": None}}), "invalid_output", False),
        (_response({"finish_reason": "stop", "message": {"content": "[" * 100_000}}), "invalid_output", False),
        (
            _response({"finish_reason": "stop", "message": {"content": GOOD_ANSWER}},
                      prompt_filter_results=[{"prompt_index": 0, "content_filter_results": {"error": {"code": "x"}}}]),
            "content_filter_unavailable",
            True,
        ),
    ],
)
def test_unusable_responses_are_failures(content, reason, retryable):
    target = DeploymentTarget(name="t", endpoint="http://x", deployment="d", api_version="v", api_key_env="K")
    with pytest.raises(UpstreamFailure) as caught:
        azure._read_response(target=target, spec=FEATURES["prioritize"], status_code=200,
                             headers={"apim-request-id": "req-1"}, content=content)
    assert (caught.value.reason, caught.value.retryable) == (reason, retryable)
    assert caught.value.request_id == "req-1"


def test_request_id_falls_back_to_the_response_id():
    target = DeploymentTarget(name="t", endpoint="http://x", deployment="d", api_version="v", api_key_env="K")
    success = azure._read_response(
        target=target, spec=FEATURES["prioritize"], status_code=200, headers={},
        content=_response({"finish_reason": "stop", "message": {"content": GOOD_ANSWER}}),
    )
    assert success.request_id == "chatcmpl-1"
    assert (success.prompt_tokens, success.completion_tokens) == (10, 5)
    assert success.output == {"priority": "low", "rationale": "A question."}


def test_rate_limit_reads_retry_after_from_the_headers(call, sim, make_target):
    sim.set_behaviour("429", retry_after=2.5)
    with pytest.raises(RateLimited) as caught:
        call(targets=[make_target()], messages=messages_for(), feature="summarize")
    assert caught.value.retry_after == 2.5
    assert caught.value.status_code == 429


def test_rate_limit_with_a_retry_after_that_is_no_number_nor_date_gives_no_hint(call, sim, make_target):
    """`Retry-After: soon` used to raise ValueError out of the failover loop (a 500 upstream)."""
    sim.set_behaviour("429", retry_after="soon")
    second = make_target("gpt-4o-b")
    with pytest.raises(RateLimited) as caught:
        call(targets=[make_target(), second], messages=messages_for(), feature="summarize")
    assert caught.value.retry_after is None and caught.value.status_code == 429
    assert [attempt.outcome for attempt in caught.value.attempts] == ["rate_limited", "rate_limited"]


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": " 2.5 "}, 2.5),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
    ({"retry-after": "-4"}, 0.0),
    ({"retry-after": "1e400"}, None),
    ({"retry-after": "inf"}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": ""}, None),
    ({"retry-after": "Mon, 99 Foo 2026 25:61:61 GMT"}, None),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: retry now
    ({"retry-after": "99999999999"}, azure.MAX_RETRY_AFTER_SECONDS),
    ({}, None),
])
def test_retry_after_is_parsed_robustly(headers, expected):
    assert azure._retry_after(headers) == expected


def test_retry_after_as_a_future_http_date():
    import email.utils

    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 50 <= azure._retry_after({"retry-after": in_a_minute}) <= 60


def test_a_fault_while_mapping_an_error_is_a_failure_of_the_target(call, sim, make_target, monkeypatch):
    def broken(exc, target):
        raise KeyError("mapping")

    monkeypatch.setattr(azure, "_map_exception", broken)
    sim.set_behaviour("500")
    with pytest.raises(UpstreamError) as caught:
        call(targets=[make_target()], messages=messages_for(), feature="summarize")
    assert caught.value.reason.startswith("client_error:") and caught.value.http_status == 502


def test_timeout_is_bounded_by_the_target_timeout(call, sim, make_target):
    """The simulator would answer after 3 s, well inside the target's default timeouts: a timeout
    proves the target's 0.3 s bound was applied (the time it takes is measured in `make bench`)."""
    sim.set_behaviour("slow", delay_ms=3000)
    with pytest.raises(UpstreamTimeout):
        call(targets=[make_target(timeout_seconds=0.3)], messages=messages_for(), feature="summarize")


def test_connection_refused_is_unavailable(call, make_target, closed_port):
    target = make_target(endpoint=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(UpstreamUnavailable) as caught:
        call(targets=[target], messages=messages_for(), feature="summarize")
    assert caught.value.reason == "connection_error"
    assert caught.value.retryable


def test_a_slow_answer_within_the_timeout_succeeds(call, sim, make_target):
    sim.set_behaviour("slow", delay_ms=200)
    result = call(targets=[make_target(timeout_seconds=2)], messages=messages_for(), feature="summarize")
    assert result.latency_ms >= 200


def test_wrong_key_and_unknown_deployment_are_not_retryable(call, api_key, monkeypatch):
    state = SimulatorState(api_keys={"the-right-key"}, deployments={"known"})
    with run_simulator_in_thread(state=state) as url:
        def target(name: str) -> DeploymentTarget:
            return DeploymentTarget(name=name, endpoint=url, deployment=name, api_version="2024-10-21",
                                    api_key_env=API_KEY_ENV)

        with pytest.raises(UpstreamError) as caught:
            call(targets=[target("known"), target("other")], messages=messages_for(), feature="summarize")
        assert (caught.value.reason, caught.value.status_code, caught.value.retryable) == ("auth_failed", 401, False)
        assert [r["deployment"] for r in state.recorded()] == ["known"]

        monkeypatch.setenv(API_KEY_ENV, "the-right-key")
        with pytest.raises(UpstreamError) as caught:
            call(targets=[target("missing"), target("known")], messages=messages_for(), feature="summarize")
        assert (caught.value.reason, caught.value.status_code) == ("deployment_not_found", 404)
        assert call(targets=[target("known")], messages=messages_for(), feature="summarize").target.name == "known"


# --- failover -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["429", "500", "503", "timeout", "filter_error", "prompt_filter_error"])
def test_retryable_failures_fail_over_to_the_next_target(call, sim, make_target, mode):
    first, second = make_target("dep-a", timeout_seconds=0.5), make_target("dep-b")
    sim.set_behaviour(mode, deployment="dep-a")

    result = call(targets=[first, second], messages=messages_for(), feature="time-entry")

    assert result.target == second
    assert [a.deployment for a in result.attempts] == [first.name, second.name]
    assert result.attempts[0].outcome != "ok" and result.attempts[1].outcome == "ok"
    assert deployments_called(sim) == ["dep-a", "dep-b"]
    assert result.total_latency_ms >= result.latency_ms


def test_connection_errors_fail_over(call, sim, make_target, closed_port):
    dead = make_target("dep-dead", endpoint=f"http://127.0.0.1:{closed_port}")
    result = call(targets=[dead, make_target("dep-b")], messages=messages_for(), feature="summarize")
    assert result.target.deployment == "dep-b"
    assert result.attempts[0].outcome == "connection_error"


@pytest.mark.parametrize(
    "mode", ["content_filter_prompt", "content_filter_completion", "invalid_json", "schema_mismatch"]
)
def test_non_retryable_failures_stop_at_the_first_target(call, sim, make_target, mode):
    sim.set_behaviour(mode, deployment="dep-a")
    with pytest.raises(UpstreamFailure) as caught:
        call(targets=[make_target("dep-a"), make_target("dep-b")], messages=messages_for(), feature="summarize")
    assert not caught.value.retryable
    assert deployments_called(sim) == ["dep-a"]


def test_failover_never_goes_beyond_the_given_list(call, sim, make_target):
    sim.set_behaviour("429", deployment="dep-a")
    sim.set_behaviour("500", deployment="dep-b")
    sim.set_behaviour("503", deployment="dep-c")
    # dep-d would answer, but it is not in the list.
    targets = [make_target("dep-a"), make_target("dep-b"), make_target("dep-c")]

    with pytest.raises(UpstreamUnavailable) as caught:
        call(targets=targets, messages=messages_for(), feature="summarize")

    assert deployments_called(sim) == ["dep-a", "dep-b", "dep-c"]
    assert caught.value.status_code == 503  # the last failure is the one raised
    assert [(a.deployment, a.outcome, a.status_code) for a in caught.value.attempts] == [
        ("sim-dep-a", "rate_limited", 429),
        ("sim-dep-b", "server_error", 500),
        ("sim-dep-c", "server_error", 503),
    ]


def test_a_failure_limited_in_times_recovers(call, sim, make_target):
    sim.set_behaviour("503", times=1)
    with pytest.raises(UpstreamUnavailable):
        call(targets=[make_target()], messages=messages_for(), feature="summarize")
    assert call(targets=[make_target()], messages=messages_for(), feature="summarize").output


def test_the_deadline_bounds_the_whole_call(call, sim, make_target):
    """dep-a would answer after 2 s, inside its 5 s timeout, and dep-b at once: the call ends with
    a timeout, without trying dep-b, only because the 0.4 s deadline cut it (timings: make bench)."""
    sim.set_behaviour("slow", delay_ms=2000, deployment="dep-a")
    with pytest.raises(UpstreamTimeout):
        call(
            targets=[make_target("dep-a"), make_target("dep-b")],
            messages=messages_for(),
            feature="summarize",
            deadline_seconds=0.4,
        )
    assert deployments_called(sim) == ["dep-a"]


def test_empty_target_list_is_a_programming_error(call):
    with pytest.raises(ValueError):
        call(targets=[], messages=messages_for(), feature="summarize")


# --- credentials ----------------------------------------------------------------------------


def test_missing_api_key_variable_is_a_configuration_error(call, sim, make_target, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV)
    with pytest.raises(ConfigurationError) as caught:
        call(targets=[make_target("dep-a"), make_target("dep-b")], messages=messages_for(), feature="summarize")
    assert API_KEY_ENV in str(caught.value)
    assert caught.value.reason == "missing_api_key"
    assert not caught.value.retryable
    assert sim.requests() == []


def test_api_key_is_read_at_call_time(call, sim, make_target, monkeypatch):
    target = make_target()
    call(targets=[target], messages=messages_for(), feature="summarize")
    monkeypatch.setenv(API_KEY_ENV, "rotated-key")
    call(targets=[target], messages=messages_for(), feature="summarize")
    assert [r["auth"]["sha256"] for r in sim.requests()] == [sha16(API_KEY), sha16("rotated-key")]


@pytest.mark.parametrize("variable", ["DJANGO_SECRET_KEY", "DATABASE_URL", "AZURE_OPENAI_KEY_", "azure_openai_key_x"])
def test_a_key_variable_outside_the_prefix_is_never_read_nor_sent(call, sim, make_target, monkeypatch, variable):
    canary = "canary-secret-of-another-variable"
    monkeypatch.setenv(variable, canary)
    with pytest.raises(ConfigurationError) as caught:
        call(targets=[make_target(api_key_env=variable)], messages=messages_for(), feature="summarize")
    assert caught.value.reason == "forbidden_api_key_env" and not caught.value.retryable
    assert canary not in str(caught.value)
    assert sim.requests() == []


def test_configuration_errors_never_show_the_key(call, make_target, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "   ")
    with pytest.raises(ConfigurationError) as caught:
        call(targets=[make_target()], messages=messages_for(), feature="summarize")
    assert "is not set" in str(caught.value)


@pytest.fixture
def entra_simulator():
    state = SimulatorState(bearer_tokens={ENTRA_TOKEN}, api_keys=set())
    with run_simulator_in_thread(state=state) as url:
        yield url, state


def entra_target(url: str) -> DeploymentTarget:
    return DeploymentTarget(
        name="entra", endpoint=url, deployment="gpt-4o", api_version="2024-10-21", auth_mode="entra_id"
    )


def test_entra_id_sends_the_credential_bearer_token(call, entra_simulator):
    url, state = entra_simulator
    credential = StubCredential()

    result = call(targets=[entra_target(url)], messages=messages_for(), feature="summarize", credential=credential)

    assert result.output
    (recorded,) = state.recorded()
    assert recorded["auth"] == {"scheme": "bearer", "sha256": sha16(ENTRA_TOKEN)}
    assert credential.scopes[0] == ("https://cognitiveservices.azure.com/.default",)


def test_entra_id_with_an_async_credential(entra_simulator):
    url, state = entra_simulator
    credential = AsyncStubCredential()
    result = asyncio.run(
        azure.acall_with_failover(
            targets=[entra_target(url)], messages=messages_for(), feature="summarize", credential=credential
        )
    )
    assert result.output
    assert state.recorded()[0]["auth"]["scheme"] == "bearer"
    assert credential.scopes == [("https://cognitiveservices.azure.com/.default",)]


def test_entra_id_wrong_token_is_refused(call, entra_simulator):
    url, _ = entra_simulator
    with pytest.raises(UpstreamError) as caught:
        call(targets=[entra_target(url)], messages=messages_for(), feature="summarize",
             credential=StubCredential("another-token"))
    assert caught.value.reason == "auth_failed"


def test_entra_id_credential_failure_is_a_configuration_error(call, entra_simulator):
    url, state = entra_simulator
    with pytest.raises(ConfigurationError) as caught:
        call(targets=[entra_target(url)], messages=messages_for(), feature="summarize",
             credential=FailingCredential())
    assert caught.value.reason == "credential_unavailable"
    assert state.recorded() == []


def test_target_validation():
    with pytest.raises(ValueError):
        DeploymentTarget(name="x", endpoint="http://x", deployment="d", api_version="v", auth_mode="api_key")
    with pytest.raises(ValueError):
        DeploymentTarget(name="x", endpoint="http://x", deployment="d", api_version="v", auth_mode="basic")
    with pytest.raises(ValueError):
        DeploymentTarget(name="x", endpoint="http://x", deployment="d", api_version="v", api_key_env="K",
                         timeout_seconds=0)
    with pytest.raises(ValueError):
        DeploymentTarget(name="x", endpoint="http://x", deployment="d", api_version="v", api_key_env="K",
                         max_connections=0)


# --- privacy --------------------------------------------------------------------------------


def test_disallowed_fields_never_reach_the_upstream(call, sim, make_target):
    for feature in FEATURES:
        call(targets=[make_target()], messages=messages_for(feature), feature=feature)
    recorded = json.dumps(sim.requests(), ensure_ascii=False)
    assert DISALLOWED not in recorded
    assert ALLOWED in recorded  # the allowed fields did travel


def _exception_texts(error: BaseException) -> str:
    texts = [str(error), repr(error), repr(getattr(error, "attempts", ()))]
    assert error.__cause__ is None and error.__context__ is None
    return "\n".join(texts)


@pytest.mark.parametrize("mode", [shape[0] for shape in ERROR_SHAPES] + ["ok"])
def test_no_ticket_text_in_exceptions_or_logs(call, sim, make_target, caplog, mode):
    """The simulator quotes the ticket in its answers (echo), as a real model would."""
    caplog.set_level(logging.DEBUG)
    sim.set_behaviour(mode, echo=True)
    texts = []
    try:
        result = call(targets=[make_target(timeout_seconds=0.5)], messages=messages_for(), feature="summarize")
    except UpstreamFailure as failure:
        texts.append(_exception_texts(failure))
    else:
        assert mode == "ok"
        assert ALLOWED in json.dumps(result.output)  # the answer did quote the ticket
    texts.extend(record.getMessage() for record in caplog.records)
    texts.append(caplog.text)
    assert caplog.records, "the call logs its outcome"
    joined = "\n".join(texts)
    assert ALLOWED not in joined
    assert DISALLOWED not in joined

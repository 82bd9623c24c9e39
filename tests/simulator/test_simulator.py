"""The local Azure OpenAI simulator: Azure's shapes, control endpoints, request log, concurrency."""

import asyncio
import hashlib
import json
import socket
import urllib.error
import urllib.request

import pytest

from copilot_admin.copilot import azure
from copilot_admin.copilot.features import FEATURES
from copilot_admin.copilot.minimize import minimize_payload
from copilot_admin.copilot.prompts import render_messages
from copilot_admin.simulator.management.commands import run_simulator as run_simulator_command
from copilot_admin.simulator.server import (
    FILTER_CATEGORIES,
    SimulatorControl,
    SimulatorState,
    generate_from_schema,
    run_simulator_in_thread,
)
from tests.copilot.conftest import API_KEY, API_VERSION, SIM_TOKEN
from tests.copilot.simstats import wait_until, wait_until_idle

COMPLETIONS = "/openai/deployments/gpt-4o/chat/completions"


def post(url: str, path: str, body: object, *, headers: dict | None = None, query: str = f"?api-version={API_VERSION}"):
    """POST raw JSON; return (status, headers, decoded body) for any status."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}{path}{query}", data=data, method="POST",
        headers={"content-type": "application/json", **(headers if headers is not None else {"api-key": "k"})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def chat_body(feature: str = "summarize", text: str = "Printer offline") -> dict:
    return {
        "messages": [{"role": "system", "content": "rules"}, {"role": "user", "content": text}],
        "response_format": FEATURES[feature].response_format(),
    }


@pytest.mark.parametrize("feature", list(FEATURES))
def test_answers_like_azure(simulator_url, sim, feature):
    status, headers, body = post(simulator_url, COMPLETIONS, chat_body(feature))

    assert status == 200
    assert headers["x-request-id"] and headers["x-request-id"] == headers["apim-request-id"]
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int) and body["model"]
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert set(choice["content_filter_results"]) == set(FILTER_CATEGORIES)
    assert all(r == {"filtered": False, "severity": "safe"} for r in choice["content_filter_results"].values())
    assert body["prompt_filter_results"][0]["prompt_index"] == 0
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    FEATURES[feature].validate(json.loads(choice["message"]["content"]))


def test_answers_are_deterministic_and_never_echo_the_input(simulator_url, sim):
    _, _, first = post(simulator_url, COMPLETIONS, chat_body(text="CANARY-echo ticket"))
    _, _, again = post(simulator_url, COMPLETIONS, chat_body(text="CANARY-echo ticket"))
    _, _, other = post(simulator_url, COMPLETIONS, chat_body(text="another ticket"))
    content = first["choices"][0]["message"]["content"]
    assert content == again["choices"][0]["message"]["content"]
    assert content != other["choices"][0]["message"]["content"]
    assert "CANARY-echo" not in json.dumps(first)


def test_echo_quotes_the_last_message_like_a_real_model(simulator_url, sim):
    sim.set_behaviour("ok", echo=True)
    _, _, body = post(simulator_url, COMPLETIONS, chat_body(text="CANARY-echo ticket"))
    answer = json.loads(body["choices"][0]["message"]["content"])
    assert answer["summary"].endswith("CANARY-echo ticket")
    assert FEATURES["summarize"].validate(answer)


def test_generation_follows_the_schema():
    schema = {
        "type": "object",
        "properties": {
            "level": {"type": "string", "enum": ["a", "b"]},
            "count": {"type": "integer"},
            "ok": {"type": "boolean"},
            "maybe": {"type": ["string", "null"]},
            "items": {"type": "array", "items": {"type": "number"}},
        },
    }
    value = generate_from_schema(schema, seed="s")
    assert value["level"] in ("a", "b")
    assert isinstance(value["count"], int) and isinstance(value["ok"], bool) and isinstance(value["maybe"], str)
    assert 1 <= len(value["items"]) <= 3 and all(0 < n <= 4 for n in value["items"])
    assert generate_from_schema(schema, seed="s") == value


def test_refuses_like_azure(simulator_url, sim):
    status, _, body = post(simulator_url, COMPLETIONS, chat_body(), headers={})
    assert status == 401 and body["error"]["code"] == "401"
    status, _, _ = post(simulator_url, COMPLETIONS, chat_body(), headers={"authorization": "Bearer "})
    assert status == 401
    status, _, _ = post(simulator_url, COMPLETIONS, chat_body(), query="")
    assert status == 404
    status, _, _ = post(simulator_url, "/openai/deployments/gpt-4o/embeddings", chat_body())
    assert status == 404
    status, _, body = post(simulator_url, COMPLETIONS, b"not json")
    assert status == 400
    status, _, _ = post(simulator_url, COMPLETIONS, {"model": "x"})
    assert status == 400


@pytest.mark.parametrize(
    ("mode", "status"),
    [("429", 429), ("500", 500), ("503", 503), ("content_filter_prompt", 400), ("content_filter_completion", 200),
     ("filter_error", 200), ("invalid_json", 200), ("schema_mismatch", 200)],
)
def test_each_mode_has_azures_shape(simulator_url, sim, mode, status):
    sim.set_behaviour(mode, retry_after=2)
    got, headers, body = post(simulator_url, COMPLETIONS, chat_body())
    assert got == status
    if mode == "429":
        assert headers["retry-after"] == "2" and headers["retry-after-ms"] == "2000"
    elif mode == "content_filter_prompt":
        assert body["error"]["code"] == "content_filter"
        assert body["error"]["innererror"]["content_filter_result"]["violence"]["filtered"] is True
    elif mode == "content_filter_completion":
        assert body["choices"][0]["finish_reason"] == "content_filter"
        assert body["choices"][0]["content_filter_results"]["violence"] == {"filtered": True, "severity": "medium"}
    elif mode == "filter_error":
        assert "error" in body["choices"][0]["content_filter_results"]
    elif mode == "invalid_json":
        with pytest.raises(ValueError):
            json.loads(body["choices"][0]["message"]["content"])
    elif mode == "schema_mismatch":
        assert set(json.loads(body["choices"][0]["message"]["content"])) == {"unexpected"}
    else:
        assert body["error"]["message"]


def test_a_marker_in_the_messages_picks_the_mode(simulator_url, sim):
    status, _, _ = post(simulator_url, COMPLETIONS, chat_body(text="please [[sim:503]]"))
    assert status == 503
    status, _, _ = post(simulator_url, COMPLETIONS, chat_body(text="unknown [[sim:explode]]"))
    assert status == 200


def test_behaviour_per_deployment_and_for_a_number_of_requests(simulator_url, sim):
    sim.set_behaviour("500", deployment="dep-a", times=2)
    described = sim._call("GET", "/_sim/behaviour")
    assert described["deployments"]["dep-a"]["mode"] == "500"
    path_a = "/openai/deployments/dep-a/chat/completions"
    assert [post(simulator_url, path_a, chat_body())[0] for _ in range(3)] == [500, 500, 200]
    assert post(simulator_url, COMPLETIONS, chat_body())[0] == 200


def test_control_refuses_unknown_modes(simulator_url, sim):
    with pytest.raises(urllib.error.HTTPError) as caught:
        sim.set_behaviour("explode")
    assert caught.value.code == 400
    with pytest.raises(urllib.error.HTTPError):
        sim.set_behaviour("slow", delay_ms=-1)


def test_request_log_keeps_no_secret(simulator_url, sim):
    post(simulator_url, COMPLETIONS, chat_body(), headers={"api-key": "sekret-key", "cookie": "session=sekret"})
    post(simulator_url, COMPLETIONS, chat_body(), headers={"authorization": "Bearer sekret-token"})
    first, second = sim.requests()
    assert "sekret" not in json.dumps([first, second])
    assert first["auth"] == {"scheme": "api-key", "sha256": hashlib.sha256(b"sekret-key").hexdigest()[:16]}
    assert second["auth"]["scheme"] == "bearer"
    assert first["body"] == chat_body()
    sim.clear_requests()
    assert sim.requests() == []


def test_request_log_is_bounded():
    state = SimulatorState(max_recorded=3, control_token=SIM_TOKEN)
    with run_simulator_in_thread(state=state) as url:
        for n in range(5):
            post(url, COMPLETIONS, chat_body(text=f"ticket {n}"))
        assert [r["body"]["messages"][1]["content"] for r in SimulatorControl(url, token=SIM_TOKEN).requests()] == [
            "ticket 2", "ticket 3", "ticket 4"
        ]


def test_works_under_a_path_prefix(simulator_url, sim):
    assert post(simulator_url, f"/simulator{COMPLETIONS}", chat_body())[0] == 200


def test_serves_hundreds_of_concurrent_slow_requests(sim, make_target):
    """300 calls, each held 1 s by the simulator, are served together: no thread per request.

    Counted, not timed (the wall time is in `make bench`, bench_upstream): the simulator saw
    far more requests in flight at once than any thread pool would hold.
    """
    sim.set_behaviour("slow", delay_ms=1000)
    target = make_target(timeout_seconds=300)  # generous: a busy machine may take long to start 300 calls
    messages = [{"role": "user", "content": "ticket"}]

    async def many():
        return await asyncio.gather(
            *(azure.acall_with_failover(targets=[target], messages=messages, feature="prioritize") for _ in range(300))
        )

    results = asyncio.run(many())
    assert len(results) == 300 and all(r.output["priority"] for r in results)
    stats = sim.stats()
    assert stats["peak_in_flight"] >= 100, stats
    assert stats["in_flight"] == 0 and stats["abandoned"] == 0


def test_counts_requests_in_flight_and_abandoned(simulator_url, sim, make_target):
    """The load counters themselves: requests held together, and one whose client went away."""
    sim.set_behaviour("slow", delay_ms=300)
    target = make_target(timeout_seconds=5)
    messages = [{"role": "user", "content": "ticket"}]

    async def three():
        return await asyncio.gather(
            *(azure.acall_with_failover(targets=[target], messages=messages, feature="prioritize") for _ in range(3))
        )

    asyncio.run(three())
    stats = sim.stats()
    assert stats["peak_in_flight"] >= 3 and stats["in_flight"] == 0 and stats["abandoned"] == 0

    # A client that goes away while its request is held: sent whole, seen in flight, then closed.
    sim.clear_requests()
    sim.set_behaviour("slow", delay_ms=30_000)
    host, port = simulator_url.removeprefix("http://").split(":")
    body = json.dumps(chat_body()).encode()
    with socket.create_connection((host, int(port))) as client:
        client.sendall(
            f"POST {COMPLETIONS}?api-version={API_VERSION} HTTP/1.1\r\nHost: {host}\r\napi-key: {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        assert wait_until(lambda: sim.stats()["in_flight"] == 1)
    assert wait_until_idle(sim) == {"in_flight": 0, "peak_in_flight": 1, "abandoned": 1}


def test_management_command_serves_the_simulator(monkeypatch):
    import uvicorn

    seen = {}

    def fake_run(self, sockets=None):
        seen["config"] = self.config

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    command = run_simulator_command.Command()
    parser = command.create_parser("manage.py", "run_simulator")
    options = vars(parser.parse_args(["--port", "8799", "--deployment", "gpt-4o"]))
    command.execute(**{**options, "skip_checks": True})

    config = seen["config"]
    assert (config.host, config.port) == ("127.0.0.1", 8799)
    assert config.app.state.deployments == frozenset({"gpt-4o"})


# --- issue 14: answers built from the ticket, as a model would -------------------------------------------


def ticket_body(feature: str, *, summary: str, description: str = "", reply: str = "") -> dict:
    """A request exactly as the copilot sends it: the real minimization and prompt rendering."""
    conversation = [{"author": "contact", "body": reply, "internal": False}] if reply else []
    payload = minimize_payload(body={"contact": {"first_name": "Dana", "last_name": "Whitfield", "type": "customer"},
                                     "issue": {"summary": summary, "description": description,
                                               "conversation": conversation}})
    return {"messages": render_messages(feature=feature, payload=payload),
            "response_format": FEATURES[feature].response_format()}


def answer_for(simulator_url, feature, **ticket) -> dict:
    status, _, body = post(simulator_url, COMPLETIONS, ticket_body(feature, **ticket))
    assert status == 200
    answer = json.loads(body["choices"][0]["message"]["content"])
    assert FEATURES[feature].validate(answer)
    assert "Simulated" not in json.dumps(answer)
    return answer


def test_a_summary_is_built_from_the_ticket(simulator_url, sim):
    answer = answer_for(simulator_url, "summarize", summary="Outlook keeps asking for the password",
                        description="Since the Windows update Outlook prompts every few minutes.",
                        reply="I restarted twice.")
    assert answer["summary"].startswith("Dana Whitfield reports: Outlook keeps asking for the password.")
    assert "Since the Windows update Outlook prompts every few minutes" in answer["summary"]
    assert 'The latest message says: "I restarted twice".' in answer["summary"]
    assert "Contact: Dana Whitfield (customer)" in answer["key_details"]
    assert any("Outlook profile" in step for step in answer["next_steps"])  # from the ticket's words


def test_a_time_entry_is_drafted_from_the_description(simulator_url, sim):
    answer = answer_for(simulator_url, "time-entry", summary="New laptop for the finance team",
                        description="Install and configure a laptop for the new accountant.")
    assert answer["notes"].startswith('Investigated "New laptop for the finance team" for Dana Whitfield.')
    assert "Install and configure a laptop for the new accountant" in answer["notes"]
    assert answer["work_type"] == "Configuration" and answer["hours"] == 0.25


@pytest.mark.parametrize(("summary", "priority", "word"), [
    ("Ransomware note on the file server", "critical", "ransomware"),
    ("Cannot print the invoices", "high", "cannot"),
    ("Question about the shared calendar colours", "low", "question"),
    ("Laptop fan is loud", "medium", ""),
])
def test_a_priority_comes_with_a_reason_from_the_ticket(simulator_url, sim, summary, priority, word):
    answer = answer_for(simulator_url, "prioritize", summary=summary)
    assert answer["priority"] == priority
    assert f'"{summary}"' in answer["rationale"]
    if word:
        assert f'The ticket says "{word}"' in answer["rationale"]


def test_echo_still_quotes_the_ticket_and_keeps_the_priority_valid(simulator_url, sim):
    sim.set_behaviour("ok", echo=True)
    answer = answer_for(simulator_url, "prioritize", summary="Cannot print the invoices")
    assert answer["priority"] == "high" and answer["rationale"].endswith("}")  # the echoed JSON's tail

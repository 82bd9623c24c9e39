"""A local stand-in for Azure OpenAI chat completions, for development, tests and benchmarks.

It is a small ASGI app (no framework) served by uvicorn: one event loop, no thread per
request, so hundreds of slow requests can be in flight at once.

What it answers, like Azure does:
- `POST .../openai/deployments/<name>/chat/completions?api-version=...`: a chat completion
  (`id`, `object`, `created`, `model`, `choices` with `content_filter_results`, `usage`,
  `prompt_filter_results`) with `x-request-id` and `apim-request-id` headers. The answer is
  deterministic: JSON generated from the request's `response_format` schema, seeded by a hash
  of the request messages. It does not echo the request's text unless a behaviour says
  `"echo": true` (then every string quotes the end of the last message, as a real model would
  quote the ticket: privacy tests use it to prove answers and errors are not stored or logged).
- 401 when neither an `api-key` header nor an `Authorization: Bearer` token is present (or, when
  the simulator was given expected keys or tokens, when they do not match); 404 without
  `api-version`, for an unknown path, or for a deployment outside `deployments` when given.

How to make it misbehave:
- `POST /_sim/behaviour {"mode": ..., "delay_ms": ..., "retry_after": ..., "categories": [...],
  "echo": bool, "times": N, "deployment": "<name>"}`; modes are listed in `MODES`. With `deployment` the
  behaviour applies to that deployment only; with `times` it applies to the next N requests.
  `GET` shows the behaviours, `DELETE` resets them all to `ok`.
- A marker in any message, `[[sim:<mode>]]` (e.g. typed into a demo ticket), applies that
  mode to that request.

What it remembers: every request, as `{method, path, query, deployment, headers, auth, body}`,
secrets removed from the headers (`auth` keeps the scheme and a SHA-256 prefix of the secret);
`GET /_sim/requests` lists them, `DELETE /_sim/requests` forgets them. Only the latest
`max_recorded` are kept. `GET /_sim/stats` counts the load since then: completions in flight
now, the most in flight at once, and how many clients went away before their answer.

Who may drive it: the request log holds every prompt sent to it, so the control endpoints
(`/_sim/requests`, `/_sim/stats`, `/_sim/behaviour`) answer only a request carrying the state's
`control_token` in the `X-Simulator-Token` header (compared in constant time); a wrong or
missing token is 403, and a simulator given no token serves no control endpoint at all (404).
`/_sim/health` is open; the completion endpoint checks the api-key like Azure does.

Use `run_simulator_in_thread()` in tests (yields the base URL) and `python manage.py
run_simulator` for standalone and load use. `SimulatorControl` drives the control endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

# ok: a valid answer; slow: the same after delay_ms (default 1 s); 429/500/503: Azure's error
# bodies (429 with retry-after headers); timeout: hold the request delay_ms (default 120 s) or
# until the client gives up, then 408; content_filter_prompt: Azure's 400 `content_filter`;
# content_filter_completion: finish_reason `content_filter`; filter_error/prompt_filter_error:
# filter results holding an `error` (the filter did not run); invalid_json: content that is not
# JSON; schema_mismatch: JSON that does not follow the requested schema.
MODES: tuple[str, ...] = (
    "ok",
    "slow",
    "429",
    "500",
    "503",
    "timeout",
    "content_filter_prompt",
    "content_filter_completion",
    "filter_error",
    "prompt_filter_error",
    "invalid_json",
    "schema_mismatch",
)
FILTER_CATEGORIES: tuple[str, ...] = ("hate", "self_harm", "sexual", "violence")
CONTROL_TOKEN_HEADER = "x-simulator-token"
SECRET_HEADERS = frozenset(
    {"api-key", "authorization", "cookie", "ocp-apim-subscription-key", "x-api-key", CONTROL_TOKEN_HEADER}
)
MODEL_NAME = "gpt-4o-2024-08-06"
DEFAULT_SLOW_MS = 1000
DEFAULT_TIMEOUT_MS = 120_000

_COMPLETIONS_PATH = re.compile(r"/openai/deployments/([^/]+)/chat/completions/?$")
_CONTROL_PATH = re.compile(r"/_sim/(requests|behaviour|health|stats)/?$")
_MARKER = re.compile(r"\[\[sim:([a-z0-9_]+)\]\]")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Behaviour:
    """How the simulator answers: a mode, an added delay, and the mode's details."""

    mode: str = "ok"
    delay_ms: int = 0
    retry_after: float | str = 1.0  # a string is sent as the Retry-After header verbatim ("soon")
    categories: tuple[str, ...] = ("violence",)
    echo: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Behaviour:
        mode = data.get("mode", "ok")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        delay_ms = data.get("delay_ms")
        if delay_ms is None:
            delay_ms = {"slow": DEFAULT_SLOW_MS, "timeout": DEFAULT_TIMEOUT_MS}.get(mode, 0)
        if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or delay_ms < 0:
            raise ValueError("delay_ms must be a non-negative integer")
        retry_after = data.get("retry_after", 1.0)
        if isinstance(retry_after, str):
            if not retry_after.strip() or len(retry_after) > 64 or not retry_after.isascii() or not retry_after.isprintable():
                raise ValueError("retry_after as a header value must be 1 to 64 printable ASCII characters")
        elif not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool) or retry_after < 0:
            raise ValueError("retry_after must be a non-negative number, or a header value")
        categories = data.get("categories", ["violence"])
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise ValueError("categories must be a list of strings")
        echo = data.get("echo", False)
        if not isinstance(echo, bool):
            raise ValueError("echo must be true or false")
        return cls(
            mode=mode, delay_ms=delay_ms, retry_after=retry_after if isinstance(retry_after, str) else float(retry_after),
            categories=tuple(categories), echo=echo,
        )


@dataclass
class _Rule:
    behaviour: Behaviour
    remaining: int | None  # None: until changed


class SimulatorState:
    """Behaviours, expected credentials and the request log of one simulator.

    `control_token`: the secret the control endpoints require (None or empty: no control
    endpoint is served).
    """

    def __init__(
        self,
        *,
        max_recorded: int = 10_000,
        api_keys: Iterable[str] | None = None,
        bearer_tokens: Iterable[str] | None = None,
        deployments: Iterable[str] | None = None,
        control_token: str | None = None,
    ) -> None:
        self.control_token = control_token or None
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.bearer_tokens = frozenset(bearer_tokens) if bearer_tokens is not None else None
        self.deployments = frozenset(deployments) if deployments is not None else None
        self.requests: deque[dict[str, Any]] = deque(maxlen=max_recorded)
        self._default: _Rule = _Rule(Behaviour(), None)
        self._per_deployment: dict[str, _Rule] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self._peak_in_flight = 0
        self._abandoned = 0

    def set_behaviour(self, behaviour: Behaviour, *, deployment: str | None = None, times: int | None = None) -> None:
        with self._lock:
            rule = _Rule(behaviour, times)
            if deployment:
                self._per_deployment[deployment] = rule
            else:
                self._default = rule

    def reset_behaviour(self) -> None:
        with self._lock:
            self._default = _Rule(Behaviour(), None)
            self._per_deployment.clear()

    def behaviour_for(self, deployment: str) -> Behaviour:
        """The behaviour for the next request to `deployment`, counting down `times`."""
        with self._lock:
            for key, rule in ((deployment, self._per_deployment.get(deployment)), (None, self._default)):
                if rule is None:
                    continue
                if rule.remaining is not None:
                    if rule.remaining <= 0:
                        continue
                    rule.remaining -= 1
                return rule.behaviour
            return Behaviour()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "default": {**dataclasses.asdict(self._default.behaviour), "times": self._default.remaining},
                "deployments": {
                    name: {**dataclasses.asdict(rule.behaviour), "times": rule.remaining}
                    for name, rule in self._per_deployment.items()
                },
            }

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def recorded(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def clear_recorded(self) -> None:
        """Empty the request log and restart the load counters of `stats()`."""
        with self._lock:
            self.requests.clear()
            self._peak_in_flight = self._in_flight
            self._abandoned = 0

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Counts one completion request from its arrival to its answer (or abandonment)."""
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def count_abandoned(self) -> None:
        with self._lock:
            self._abandoned += 1

    def stats(self) -> dict[str, int]:
        """Load since the log was last cleared, counted rather than timed: requests being served
        now, the most served at once, and how many clients went away before their answer."""
        with self._lock:
            return {"in_flight": self._in_flight, "peak_in_flight": self._peak_in_flight, "abandoned": self._abandoned}


# --- answers ------------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def generate_from_schema(schema: Mapping[str, Any], *, seed: str, path: str = "$", echo: str = "") -> Any:
    """A deterministic value valid for a strict structured-output schema.

    `echo` is appended to every string, as a real model quotes the ticket in its answer.
    """
    number = int(_digest(seed, path)[:12], 16)
    if "enum" in schema and schema["enum"]:
        return schema["enum"][number % len(schema["enum"])]
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            key: generate_from_schema(sub, seed=seed, path=f"{path}.{key}", echo=echo)
            for key, sub in properties.items()
        }
    if kind == "array":
        items = schema.get("items") or {"type": "string"}
        return [generate_from_schema(items, seed=seed, path=f"{path}[{i}]", echo=echo) for i in range(1 + number % 3)]
    if kind == "number":
        return (1 + number % 16) * 0.25  # a quarter-hour count between 0.25 and 4
    if kind == "integer":
        return 1 + number % 10
    if kind == "boolean":
        return number % 2 == 0
    if kind == "null":
        return None
    label = path.rsplit(".", 1)[-1].replace("_", " ").strip("$[]0123456789") or "text"
    text = f"Simulated {label} {_digest(seed, path)[:8]}."
    return f"{text} {echo}" if echo else text


def _ticket_from_messages(texts: list[str]) -> dict[str, Any] | None:
    """The ticket of a copilot call: the JSON after the user message's first line (see prompts.py)."""
    if not texts:
        return None
    _, _, rest = texts[-1].partition("\n")
    try:
        ticket = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(ticket, dict) or not isinstance(ticket.get("issue"), dict):
        return None
    return ticket


def _text(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _first_sentence(text: str, limit: int = 200) -> str:
    text = _text(text)
    for mark in (". ", "! ", "? "):
        if mark in text:
            text = text.split(mark, 1)[0]
    text = text.rstrip(".!? ")
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_PRIORITY_SIGNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("critical", ("outage", "ransomware", "breach", "phishing", "all users", "everyone", "server down",
                  "site down", "business stopped", "nobody can"), "it points to an outage or a security incident"),
    ("high", ("cannot", "can't", "unable", "does not", "doesn't", "not working", "fails", "failed", "error",
              "keeps asking", "offline", "down", "urgent", "meeting"), "a user is blocked in their work"),
    ("low", ("question", "request", "how do", "how to", "would like", "new user", "cosmetic", "when convenient"),
     "it is a request or a question, not a fault"),
)

_WORK_TYPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Onsite Support", ("onsite", "on site", "on-site", "visit", "cable", "replace")),
    ("Configuration", ("configure", "set up", "setup", "install", "new user", "onboard", "license", "permission")),
    ("Troubleshooting", ("error", "fails", "failed", "crash", "keeps", "not working", "offline", "cannot", "can't")),
)

_NEXT_STEPS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("password", "login", "sign in", "mfa", "locked"), "Check the account's sign-in log and MFA status"),
    (("outlook", "mail", "exchange"), "Test the mailbox in webmail and recreate the Outlook profile if needed"),
    (("printer", "print"), "Check the printer's queue and network connection"),
    (("vpn", "network", "wifi", "wi-fi", "internet"), "Check the network path and the VPN client's log"),
    (("update", "upgrade", "patch"), "Review the recent update and roll it back on one machine to confirm"),
)


def _matches(text: str, words: Iterable[str]) -> str:
    lowered = text.lower()
    return next((word for word in words if word in lowered), "")


def plausible_answer(
    schema: Mapping[str, Any], ticket: Mapping[str, Any], *, seed: str, echo: str = ""
) -> dict[str, Any] | None:
    """An answer to one of the copilot's features that reads like a model's, built from the
    ticket's own words (deterministic). None for a schema the simulator does not know."""
    keys = set((schema.get("properties") or {}).keys())
    contact = ticket.get("contact") if isinstance(ticket.get("contact"), dict) else {}
    issue = ticket["issue"]
    summary = _first_sentence(issue.get("summary", "")) or "the reported problem"
    description = _first_sentence(issue.get("description", ""))
    conversation = [e for e in issue.get("conversation") or [] if isinstance(e, dict) and _text(e.get("body"))]
    name = " ".join(p for p in (_text(contact.get("first_name")), _text(contact.get("last_name"))) if p)
    who = name or "The contact"
    everything = " ".join([summary, _text(issue.get("description")), *(_text(e.get("body")) for e in conversation)])
    answer: dict[str, Any]
    if keys == {"summary", "key_details", "next_steps"}:
        latest = f" The latest message says: \"{_first_sentence(conversation[-1]['body'], 160)}\"." if conversation else ""
        details = [f"Reported problem: {summary}"]
        if description:
            details.append(f"Description: {description}")
        if name:
            details.append(f"Contact: {name}" + (f" ({_text(contact.get('type'))})" if contact.get("type") else ""))
        details.append(f"{len(conversation)} message(s) from the conversation")
        steps = [step for words, step in _NEXT_STEPS if _matches(everything, words)][:2]
        steps.append(f"Confirm with {name.split(' ')[0] if name else 'the contact'} once it is resolved")
        answer = {
            "summary": f"{who} reports: {summary}." + (f" {description}." if description else "") + latest
            + " No fix is recorded on the ticket yet.",
            "key_details": details,
            "next_steps": [f"Reproduce \"{summary}\"", *steps],
        }
    elif keys == {"notes", "hours", "work_type"}:
        work_type = next((kind for kind, words in _WORK_TYPES if _matches(everything, words)), "Remote Support")
        quarters = min(16, 1 + len(_text(issue.get("description"))) // 150 + len(conversation))
        answer = {
            "notes": f"Investigated \"{summary}\" for {name or 'the contact'}."
            + (f" {description}." if description else "")
            + f" Kept {name.split(' ')[0] if name else 'the contact'} informed of progress.",
            "hours": quarters * 0.25,
            "work_type": work_type,
        }
    elif keys == {"priority", "rationale"}:
        allowed = list((schema["properties"]["priority"] or {}).get("enum") or [])
        priority, rationale = "medium", (
            f"\"{summary}\" describes an impairment with no sign of an outage or a blocked user; "
            "a workaround is likely."
        )
        for level, words, why in _PRIORITY_SIGNS:
            if word := _matches(everything, words):
                priority, rationale = level, f"The ticket says \"{word}\" about \"{summary}\": {why}."
                break
        if allowed and priority not in allowed:
            return None
        answer = {"priority": priority, "rationale": rationale}
    else:
        return None
    return _with_echo(answer, echo) if echo else answer


def _with_echo(value: Any, echo: str) -> Any:
    if isinstance(value, str):
        return f"{value} {echo}"
    if isinstance(value, list):
        return [_with_echo(item, echo) for item in value]
    if isinstance(value, dict):  # an enumeration (priority) stays one of its values
        return {key: item if key == "priority" else _with_echo(item, echo) for key, item in value.items()}
    return value


def _safe_filter_results(*, prompt: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {name: {"filtered": False, "severity": "safe"} for name in FILTER_CATEGORIES}
    if prompt:
        results["jailbreak"] = {"filtered": False, "detected": False}
    return results


def _filtered_results(categories: Iterable[str], *, prompt: bool = False) -> dict[str, Any]:
    results = _safe_filter_results(prompt=prompt)
    for name in categories:
        results[name] = (
            {"filtered": True, "detected": True} if name == "jailbreak" else {"filtered": True, "severity": "medium"}
        )
    return results


def _error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _message_texts(body: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(part.get("text", "") for part in content if isinstance(part, Mapping))
    return texts


def _completion(
    *, body: Mapping[str, Any], deployment: str, behaviour: Behaviour, request_id: str
) -> tuple[int, dict[str, Any]]:
    texts = _message_texts(body)
    seed = _digest(deployment, *texts)
    echo = texts[-1][-200:] if behaviour.echo and texts else ""
    response_format = body.get("response_format")
    json_schema = response_format.get("json_schema") if isinstance(response_format, Mapping) else None
    schema = json_schema.get("schema") if isinstance(json_schema, Mapping) else None
    if isinstance(schema, Mapping):
        ticket = _ticket_from_messages(texts)
        answer = plausible_answer(schema, ticket, seed=seed, echo=echo) if ticket else None
        if answer is None:
            answer = generate_from_schema(schema, seed=seed, echo=echo)
        if behaviour.mode == "schema_mismatch":
            answer = {"unexpected": generate_from_schema({"type": "string"}, seed=seed, echo=echo)}
        content: str | None = json.dumps(answer)
    else:
        content = f"Simulated response {seed[:12]}. {echo}".strip()
    if behaviour.mode == "invalid_json":
        content = f"Here is the result you asked for: {{not json {echo}".strip()

    finish_reason = "stop"
    choice_filter: dict[str, Any] = _safe_filter_results()
    if behaviour.mode == "content_filter_completion":
        finish_reason, content = "content_filter", None
        choice_filter = _filtered_results(behaviour.categories)
    elif behaviour.mode == "filter_error":
        choice_filter = {"error": {"code": "content_filter_error", "message": "The contents are not filtered"}}

    prompt_filter: dict[str, Any] = _safe_filter_results(prompt=True)
    if behaviour.mode == "prompt_filter_error":
        prompt_filter = {"error": {"code": "content_filter_error", "message": "The contents are not filtered"}}

    prompt_tokens = max(1, sum(len(text) for text in texts) // 4)
    completion_tokens = max(1, len(content or "") // 4) if content is not None else 0
    return 200, {
        "id": f"chatcmpl-{request_id.replace('-', '')[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_NAME,
        "system_fingerprint": "fp_simulator",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": prompt_filter}],
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "logprobs": None,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "content_filter_results": choice_filter,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# --- the ASGI app -------------------------------------------------------------------------


class SimulatorApp:
    """The ASGI application. Mountable under any path prefix: routes match path suffixes."""

    def __init__(self, state: SimulatorState | None = None) -> None:
        self.state = state or SimulatorState()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        if match := _CONTROL_PATH.search(path):
            resource = match.group(1)
            refusal = None if resource == "health" else _control_refusal(self.state, scope)
            if refusal is not None:
                await _respond(send, *refusal)
                return
            await self._control(resource, method, body, send)
            return
        if (match := _COMPLETIONS_PATH.search(path)) and method == "POST":
            await self._chat_completion(scope, receive, send, urllib.parse.unquote(match.group(1)), body)
            return
        await _respond(send, 404, _error_body("404", "Resource not found"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _control(self, resource: str, method: str, body: bytes, send: Send) -> None:
        state = self.state
        if resource == "health":
            await _respond(send, 200, {"ok": True})
        elif resource == "requests" and method == "GET":
            await _respond(send, 200, {"requests": state.recorded()})
        elif resource == "stats" and method == "GET":
            await _respond(send, 200, state.stats())
        elif resource == "requests" and method == "DELETE":
            state.clear_recorded()
            await _respond(send, 200, {"ok": True})
        elif resource == "behaviour" and method == "GET":
            await _respond(send, 200, state.describe())
        elif resource == "behaviour" and method == "DELETE":
            state.reset_behaviour()
            await _respond(send, 200, state.describe())
        elif resource == "behaviour" and method in ("POST", "PUT"):
            try:
                data = json.loads(body or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("the body must be a JSON object")
                times = data.get("times")
                if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 0):
                    raise ValueError("times must be a non-negative integer")
                deployment = data.get("deployment")
                if deployment is not None and not isinstance(deployment, str):
                    raise ValueError("deployment must be a string")
                state.set_behaviour(Behaviour.from_json(data), deployment=deployment, times=times)
            except ValueError as exc:
                await _respond(send, 400, _error_body("invalid", str(exc)))
                return
            await _respond(send, 200, state.describe())
        else:
            await _respond(send, 405, _error_body("method_not_allowed", "Method not allowed"))

    async def _chat_completion(self, scope: Scope, receive: Receive, send: Send, deployment: str, raw: bytes) -> None:
        state = self.state
        request_id = str(uuid.uuid4())
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        auth_scheme, secret = _auth(headers)
        state.record(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": query,
                "deployment": deployment,
                "headers": {k: v for k, v in headers.items() if k not in SECRET_HEADERS},
                "auth": {
                    "scheme": auth_scheme,
                    "sha256": hashlib.sha256(secret.encode()).hexdigest()[:16] if secret else None,
                },
                "body": body if body is not None else raw.decode("utf-8", "replace"),
                "request_id": request_id,
            }
        )
        reply_headers = {"x-request-id": request_id, "apim-request-id": request_id, "x-ms-region": "Simulated"}

        if not query.get("api-version"):
            await _respond(send, 404, _error_body("404", "Resource not found"), reply_headers)
            return
        if not _authorized(state, auth_scheme, secret):
            await _respond(
                send,
                401,
                _error_body(
                    "401",
                    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                    "provide a valid key for an active subscription and use a correct regional API "
                    "endpoint for your resource.",
                ),
                reply_headers,
            )
            return
        if state.deployments is not None and deployment not in state.deployments:
            await _respond(
                send,
                404,
                _error_body("DeploymentNotFound", "The API deployment for this resource does not exist."),
                reply_headers,
            )
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            await _respond(send, 400, _error_body("BadRequest", "'messages' is a required property"), reply_headers)
            return

        behaviour = _marker_behaviour(body) or state.behaviour_for(deployment)
        with state.serving():
            if behaviour.delay_ms and not await _sleep_unless_disconnected(receive, behaviour.delay_ms / 1000):
                state.count_abandoned()
                return
            await self._answer(send, body, deployment, behaviour, request_id, reply_headers)

    async def _answer(
        self,
        send: Send,
        body: Mapping[str, Any],
        deployment: str,
        behaviour: Behaviour,
        request_id: str,
        headers: dict[str, str],
    ) -> None:
        mode = behaviour.mode
        if mode == "429":
            retry_after = behaviour.retry_after
            if isinstance(retry_after, str):
                hint = {"retry-after": retry_after}
            else:
                hint = {"retry-after": str(max(1, int(retry_after + 0.999))), "retry-after-ms": str(int(retry_after * 1000))}
            await _respond(
                send,
                429,
                _error_body(
                    "429",
                    "Requests to the ChatCompletions_Create Operation have exceeded the rate limit of "
                    f"your current pricing tier. Please retry after {retry_after} seconds.",
                ),
                {**headers, **hint, "x-ratelimit-remaining-requests": "0"},
            )
        elif mode == "500":
            await _respond(
                send,
                500,
                _error_body("InternalServerError", "The server had an error processing your request."),
                headers,
            )
        elif mode == "503":
            await _respond(
                send,
                503,
                _error_body("ServiceUnavailable", "The service is temporarily unable to process your request."),
                headers,
            )
        elif mode == "timeout":
            await _respond(send, 408, _error_body("Timeout", "The operation was timeout."), headers)
        elif mode == "content_filter_prompt":
            await _respond(
                send,
                400,
                {
                    "error": {
                        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                        "content management policy. Please modify your prompt and retry.",
                        "type": None,
                        "param": "prompt",
                        "code": "content_filter",
                        "status": 400,
                        "innererror": {
                            "code": "ResponsibleAIPolicyViolation",
                            "content_filter_result": _filtered_results(behaviour.categories, prompt=True),
                        },
                    }
                },
                headers,
            )
        else:
            status, payload = _completion(body=body, deployment=deployment, behaviour=behaviour, request_id=request_id)
            await _respond(send, status, payload, headers)


def _auth(headers: Mapping[str, str]) -> tuple[str | None, str]:
    api_key = headers.get("api-key", "").strip()
    if api_key:
        return "api-key", api_key
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "bearer", token.strip()
    return None, ""


def _control_refusal(state: SimulatorState, scope: Scope) -> tuple[int, dict[str, Any]] | None:
    """Why a control request is refused (status, body), or None when its token matches."""
    if not state.control_token:
        return 404, _error_body("404", "Resource not found")
    supplied = b""
    for name, value in scope.get("headers", []):
        if name.lower() == CONTROL_TOKEN_HEADER.encode():
            supplied = value
    if not supplied or not hmac.compare_digest(supplied, state.control_token.encode()):
        return 403, _error_body("forbidden", f"The control endpoints need the {CONTROL_TOKEN_HEADER} header.")
    return None


def _authorized(state: SimulatorState, scheme: str | None, secret: str) -> bool:
    if scheme == "api-key":
        return state.api_keys is None or secret in state.api_keys
    if scheme == "bearer":
        return state.bearer_tokens is None or secret in state.bearer_tokens
    return False


def _marker_behaviour(body: Mapping[str, Any]) -> Behaviour | None:
    for text in _message_texts(body):
        for match in _MARKER.finditer(text):
            if match.group(1) in MODES:
                return Behaviour.from_json({"mode": match.group(1)})
    return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _sleep_unless_disconnected(receive: Receive, seconds: float) -> bool:
    """Sleep; False as soon as the client disconnects (so abandoned requests free their task)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
    watcher = asyncio.ensure_future(disconnected())
    done, pending = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return sleeper in done


async def _respond(send: Send, status: int, payload: object, headers: Mapping[str, str] | None = None) -> None:
    data = json.dumps(payload).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw_headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data})


# --- running it ---------------------------------------------------------------------------


def uvicorn_config(app: SimulatorApp, **overrides: Any) -> Any:
    """A uvicorn config suited to the simulator (quiet, no lifespan, h11, big backlog)."""
    import uvicorn

    options: dict[str, Any] = {
        "lifespan": "off",
        "log_level": "warning",
        "access_log": False,
        "http": "h11",
        "backlog": 4096,
        "timeout_graceful_shutdown": 2,
        "timeout_keep_alive": 30,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


@contextlib.contextmanager
def run_simulator_in_thread(
    *,
    host: str = "127.0.0.1",
    state: SimulatorState | None = None,
    control_token: str | None = None,
    startup_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve a simulator on a free loopback port in a background thread; yield its base URL.

    The base URL is what a deployment's `endpoint` should be. The server stops on exit.
    `control_token` (for a new state; or give `state` with its own) opens the control endpoints.
    """
    import uvicorn

    if state is not None and control_token is not None:
        raise ValueError("give the control token to the state, or no state")
    app = SimulatorApp(state or SimulatorState(control_token=control_token))
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    # log_config=None: leave the host process's logging configuration alone.
    server = uvicorn.Server(uvicorn_config(app, log_config=None))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"azure-simulator-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the Azure OpenAI simulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class SimulatorControl:
    """A small client for the control endpoints (stdlib only), holding the simulator's control token."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: object | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        headers = {"content-type": "application/json"}
        if self.token:
            headers[CONTROL_TOKEN_HEADER] = self.token
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - loopback only
            return json.loads(response.read())

    def set_behaviour(
        self,
        mode: str,
        *,
        deployment: str | None = None,
        delay_ms: int | None = None,
        retry_after: float | str | None = None,
        categories: list[str] | None = None,
        echo: bool | None = None,
        times: int | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"mode": mode}
        for key, value in (
            ("deployment", deployment),
            ("delay_ms", delay_ms),
            ("retry_after", retry_after),
            ("categories", categories),
            ("echo", echo),
            ("times", times),
        ):
            if value is not None:
                payload[key] = value
        return self._call("POST", "/_sim/behaviour", payload)

    def reset(self) -> None:
        """Behaviours back to `ok` and the request log emptied."""
        self._call("DELETE", "/_sim/behaviour")
        self._call("DELETE", "/_sim/requests")

    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_sim/requests")["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "/_sim/requests")

    def stats(self) -> dict[str, int]:
        """`in_flight`, `peak_in_flight`, `abandoned` since the request log was last cleared."""
        return self._call("GET", "/_sim/stats")

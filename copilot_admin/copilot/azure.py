"""The only code that talks to Azure OpenAI.

It sends one feature's chat completion to a list of deployments, in the order given, through
the official `openai` SDK (`AzureOpenAI` for sync callers, `AsyncAzureOpenAI` for the ASGI
path), and turns every outcome into a `CallResult` or one typed `UpstreamFailure`. It knows
nothing of tenants, zones or users: the caller chooses the targets.

Clients: one per deployment per process, cached and reused across calls. The async ones send
over aiohttp (`openai.DefaultAioHttpClient`, the `openai[aiohttp]` extra), which holds hundreds
of requests in flight on one event loop where the SDK's default httpx pool does not; each keeps
at most the target's `max_connections` connections open. An async client's connections belong
to one event loop, so async clients are cached per loop (under uvicorn, one loop per process)
and closed when that loop shuts down (`asyncio.run`, asgiref and uvicorn all finalize a loop's
async generators before closing it) or by `aclose_clients()`.

Sync and async: `call_with_failover` and `acall_with_failover` are two native variants of
the same steps (request building, response reading and error mapping are shared functions);
neither wraps the other, so a sync caller never starts an event loop and an async caller never
blocks one.

Guarantees:
- Retries: the SDK's own retries are off (`max_retries=0`). Our single retry layer is
  failover: a retryable failure (429, 5xx, timeout, connection error, a content filter that
  did not run) moves to the next target; a non-retryable one stops. Each target is tried at
  most once, and never a target outside the given list.
- Timeouts are explicit on every request: the target's connect and total timeouts, cut to
  what is left of `deadline_seconds` when one is given.
- Transport errors map alike on both paths: a refused or dropped connection is
  `UpstreamUnavailable` (`connection_error`, 503), a connect or read timeout `UpstreamTimeout`
  (504), whether httpx or aiohttp raised it.
- Credentials: an API key is read from the environment variable the target names, at call
  time, and only from an `AZURE_OPENAI_KEY_*` variable (any other name is never read); a
  missing or refused one is a `ConfigurationError`, never showing a value.
  Entra ID uses `azure.identity.get_bearer_token_provider` on an injectable credential
  (default: one shared `DefaultAzureCredential`).
- Content filter: a prompt blocked by the filter and a completion stopped by it become
  `ContentFiltered` (stage and categories). A response whose filter results report an error
  (the filter did not run) is a failure and is never passed through.
- The answer must be JSON that the feature's validator accepts; otherwise `UpstreamError`.
- Privacy: exception messages and log records hold codes, deployment names, status codes,
  latencies and request ids only; never prompt, completion or ticket text. Mapped errors are
  raised outside the `except` block, so no SDK exception (which may quote a response body)
  is chained to them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import inspect
import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import aiohttp
import httpx2
import openai
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import get_bearer_token_provider
from azure.identity.aio import get_bearer_token_provider as get_async_bearer_token_provider
from openai import AsyncAzureOpenAI, AzureOpenAI
from openai._base_client import make_request_options

from copilot_admin.core.secrets import API_KEY_ENV_PREFIX, api_key_env_allowed

from .features import Feature, InvalidModelOutput, get_feature
from .prompts import ChatMessage

logger = logging.getLogger(__name__)

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"

AuthMode = Literal["api_key", "entra_id"]
AUTH_MODES: tuple[str, ...] = ("api_key", "entra_id")

# Idle connections to a deployment are closed after this long (httpx's default, as before):
# shorter than the idle timeout of the servers in front of Azure OpenAI, so a request never
# goes out on a connection the server is closing.
KEEPALIVE_EXPIRY_SECONDS = 5.0


# --- what to call -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentTarget:
    """One Azure OpenAI deployment to try.

    `name` is our name for it (it appears in results, logs and usage records); `deployment`
    is the deployment name on the Azure resource at `endpoint`. `timeout_seconds` bounds each
    wait on the deployment (sending, and each read of the answer); `connect_timeout_seconds`
    bounds opening the connection. `max_connections` bounds the connections this process
    opens to the deployment at once (one per request in flight; more requests wait for one,
    within their timeout). `api_version` must support structured outputs and
    `max_completion_tokens` (2024-10-21 or later).
    """

    name: str
    endpoint: str
    deployment: str
    api_version: str
    auth_mode: AuthMode = "api_key"
    api_key_env: str = ""
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 5.0
    max_connections: int = 500

    def __post_init__(self) -> None:
        if self.auth_mode not in AUTH_MODES:
            raise ValueError(f"auth_mode must be one of {', '.join(AUTH_MODES)}")
        if self.auth_mode == "api_key" and not self.api_key_env:
            raise ValueError("api_key_env is required when auth_mode is api_key")
        if self.timeout_seconds <= 0 or self.connect_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")


# --- outcomes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One request to one deployment: its outcome (`ok` or a failure reason), never content."""

    deployment: str
    outcome: str
    status_code: int | None
    latency_ms: int
    request_id: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class CallResult:
    """A validated answer and the metadata a usage record needs.

    `prompt_tokens`/`completion_tokens` come from the successful response's `usage`;
    `attempts` lists every request made, failed ones first, with their own token counts.
    """

    output: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    total_latency_ms: int
    target: DeploymentTarget
    request_id: str
    model: str
    attempts: tuple[Attempt, ...]


class UpstreamFailure(Exception):
    """Base of every failure of a call. Never carries prompt, completion or ticket text.

    - `code`: the API error code of the contract (`upstream_error`, `content_filtered`, ...).
    - `http_status`: the status the API should answer with.
    - `reason`: the finer cause, for logs and usage outcomes (`rate_limited`, `server_error`,
      `invalid_output`, ...).
    - `retryable`: whether failover to the next deployment may help.
    - `attempts`: every request made before giving up (set by the failover loop).
    - `detail`: an explanation written by this module from codes and names only.
    """

    code: ClassVar[str] = "upstream_error"
    http_status: ClassVar[int] = 502
    default_reason: ClassVar[str] = "upstream_error"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        *,
        deployment: str | None,
        reason: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        detail: str = "",
    ) -> None:
        self.deployment = deployment
        self.detail = detail
        self.reason = reason or self.default_reason
        self.status_code = status_code
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.latency_ms = 0
        self.attempts: tuple[Attempt, ...] = ()
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [f"deployment {self.deployment!r}"] if self.deployment else []
        if self.status_code is not None:
            parts.append(f"status {self.status_code}")
        parts.extend(self._extra_message_parts())
        if self.detail:
            parts.append(self.detail)
        return f"{self.code}: {self.reason} ({', '.join(parts)})" if parts else f"{self.code}: {self.reason}"

    def _extra_message_parts(self) -> list[str]:
        return []

    def attempt(self) -> Attempt:
        return Attempt(
            deployment=self.deployment or "",
            outcome=self.reason,
            status_code=self.status_code,
            latency_ms=self.latency_ms,
            request_id=self.request_id,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )


class UpstreamError(UpstreamFailure):
    """The deployment answered, but not usefully: invalid JSON or schema, refused request, ..."""


class UpstreamUnavailable(UpstreamFailure):
    """The deployment could not serve now (connection error, 5xx); another one may."""

    code = "upstream_unavailable"
    http_status = 503
    default_reason = "server_error"
    default_retryable = True


class RateLimited(UpstreamUnavailable):
    """HTTP 429 from the deployment. `retry_after` in seconds, from the response headers."""

    default_reason = "rate_limited"

    def __init__(self, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(**kwargs)

    def _extra_message_parts(self) -> list[str]:
        return [f"retry after {self.retry_after:g}s"] if self.retry_after is not None else []


class UpstreamTimeout(UpstreamFailure):
    """No answer within the timeout; another deployment may answer."""

    code = "upstream_timeout"
    http_status = 504
    default_reason = "timeout"
    default_retryable = True


class ContentFiltered(UpstreamFailure):
    """Azure's content filter blocked the prompt or stopped the completion. Not retried."""

    code = "content_filtered"
    http_status = 422
    default_reason = "content_filtered"

    def __init__(self, *, stage: Literal["prompt", "completion"], categories: Sequence[str], **kwargs: Any) -> None:
        self.stage = stage
        self.categories = tuple(categories)
        super().__init__(**kwargs)

    def _extra_message_parts(self) -> list[str]:
        return [f"stage {self.stage}", f"categories {','.join(self.categories) or 'unspecified'}"]


class ConfigurationError(UpstreamFailure):
    """The target cannot be called as configured (missing key variable, credential failure).

    Not retried: a configuration fault should be loud, not hidden behind failover.
    """

    code = "upstream_unavailable"
    http_status = 503
    default_reason = "configuration_error"

    def __init__(self, *, detail: str, **kwargs: Any) -> None:
        super().__init__(detail=detail, **kwargs)


# --- credentials and clients --------------------------------------------------------------


def read_api_key(target: DeploymentTarget) -> str:
    """The API key from the target's environment variable; `ConfigurationError` if unset, or if
    the name is not an `AZURE_OPENAI_KEY_*` variable (then it is never read)."""
    if not api_key_env_allowed(target.api_key_env):
        raise ConfigurationError(
            deployment=target.name,
            reason="forbidden_api_key_env",
            detail=f"the API key variable must be named {API_KEY_ENV_PREFIX}<NAME>",
        )
    key = os.environ.get(target.api_key_env, "")
    if not key.strip():
        raise ConfigurationError(
            deployment=target.name,
            reason="missing_api_key",
            detail=f"environment variable {target.api_key_env} is not set",
        )
    return key.strip()


_default_credential: Any = None
_clients_lock = threading.Lock()
_sync_clients: dict[tuple[Any, ...], AzureOpenAI] = {}


def default_credential() -> Any:
    """The process-wide `DefaultAzureCredential`, created on first use."""
    global _default_credential
    with _clients_lock:
        if _default_credential is None:
            from azure.identity import DefaultAzureCredential

            _default_credential = DefaultAzureCredential()
        return _default_credential


def _credential_for(target: DeploymentTarget, credential: Any) -> Any:
    if target.auth_mode != "entra_id":
        return None
    return credential if credential is not None else default_credential()


def _client_key(target: DeploymentTarget, credential: Any) -> tuple[Any, ...]:
    # One client per deployment: its own connection pool, so one deployment's load never takes
    # the connections another (its failover) needs. Everything the client is built from is in
    # the key, so an edited deployment gets a new client. The credential object itself is part
    # of the key: its token cache lives in the token provider built for that client.
    return (
        target.name, target.endpoint, target.deployment, target.api_version, target.auth_mode, target.api_key_env,
        target.max_connections, credential,
    )


def _limits(target: DeploymentTarget) -> httpx2.Limits:
    return httpx2.Limits(
        max_connections=target.max_connections,
        max_keepalive_connections=target.max_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
    )


def _sync_client(target: DeploymentTarget, credential: Any) -> AzureOpenAI:
    key = _client_key(target, credential)
    with _clients_lock:
        client = _sync_clients.get(key)
        if client is None:
            auth: dict[str, Any]
            if target.auth_mode == "entra_id":
                auth = {"azure_ad_token_provider": get_bearer_token_provider(credential, COGNITIVE_SERVICES_SCOPE)}
            else:
                auth = {"api_key": lambda: read_api_key(target)}
            client = AzureOpenAI(
                azure_endpoint=target.endpoint, api_version=target.api_version, max_retries=0,
                http_client=openai.DefaultHttpxClient(limits=_limits(target)), **auth,
            )
            _sync_clients[key] = client
        return client


def _async_token_provider(credential: Any) -> Callable[[], Awaitable[str]]:
    if inspect.iscoroutinefunction(getattr(credential, "get_token", None)):
        return get_async_bearer_token_provider(credential, COGNITIVE_SERVICES_SCOPE)
    # A sync credential may do network I/O when its token is due: keep that off the event loop.
    sync_provider = get_bearer_token_provider(credential, COGNITIVE_SERVICES_SCOPE)

    async def provider() -> str:
        return await asyncio.to_thread(sync_provider)

    return provider


def _new_async_client(target: DeploymentTarget, credential: Any) -> AsyncAzureOpenAI:
    auth: dict[str, Any]
    if target.auth_mode == "entra_id":
        auth = {"azure_ad_token_provider": _async_token_provider(credential)}
    else:

        async def api_key() -> str:
            return read_api_key(target)

        auth = {"api_key": api_key}
    return AsyncAzureOpenAI(
        azure_endpoint=target.endpoint, api_version=target.api_version, max_retries=0,
        http_client=openai.DefaultAioHttpClient(limits=_limits(target)), **auth,
    )


class _LoopClients:
    """The async clients of one event loop, one per deployment, and the guard that closes them.

    The guard is an async generator started on the loop and parked at its `yield`: when the
    loop shuts down (`loop.shutdown_asyncgens()`, which `asyncio.run`, asgiref's
    `async_to_sync` and uvicorn all call before closing a loop) its `finally` forgets and
    closes every client, so no aiohttp session outlives its loop.
    """

    def __init__(self) -> None:
        self.clients: dict[tuple[Any, ...], AsyncAzureOpenAI] = {}
        self.guard = self._close_at_loop_shutdown()

    async def _close_at_loop_shutdown(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            loop = asyncio.get_running_loop()
            with _clients_lock:
                if _async_clients.get(loop) is self:
                    del _async_clients[loop]
                clients, self.clients = list(self.clients.values()), {}
            for client in clients:
                await client.close()


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()


async def _async_client(target: DeploymentTarget, credential: Any) -> AsyncAzureOpenAI:
    """The deployment's client on the running loop, created on its first call there."""
    loop = asyncio.get_running_loop()
    key = _client_key(target, credential)
    with _clients_lock:
        pool = _async_clients.get(loop)
        new_pool = pool is None
        if pool is None:
            pool = _async_clients[loop] = _LoopClients()
        client = pool.clients.get(key)
        if client is None:
            client = pool.clients[key] = _new_async_client(target, credential)
    if new_pool:
        await anext(pool.guard)  # runs to its `yield` at once: the loop now tracks it
    return client


def close_clients() -> None:
    """Close the cached sync clients and forget all clients (tests, shutdown).

    A forgotten loop's async clients are still closed on that loop: when their guard is
    collected (the loop finalizes it) or when the loop shuts down."""
    with _clients_lock:
        for client in _sync_clients.values():
            client.close()
        _sync_clients.clear()
        _async_clients.clear()


async def aclose_clients() -> None:
    """Close the async clients of the running event loop now; the next call opens new ones."""
    with _clients_lock:
        pool = _async_clients.get(asyncio.get_running_loop())
    if pool is not None:
        await pool.guard.aclose()  # runs its `finally`


# --- the request and its answer -----------------------------------------------------------

_CHAT_COMPLETIONS = "/chat/completions"


async def _apost_chat_completion(client: AsyncAzureOpenAI, kwargs: dict[str, Any]) -> httpx2.Response:
    """The chat completion through the SDK's own request path (`client.post`: the Azure
    deployment URL, auth headers, timeouts, status errors raised as the SDK's exceptions), with
    the body as we built it and the raw response back: the SDK's typed-parameter transform and
    response model, which `chat.completions.create` adds per call, cost CPU the call does not
    need (`_read_response` reads the JSON itself). The body sent is the same as through
    `chat.completions.create` (tests/copilot/test_azure.py compares them)."""
    body = {key: value for key, value in kwargs.items() if key != "timeout"}
    return await client.post(
        _CHAT_COMPLETIONS, body=body, cast_to=httpx2.Response,
        options=make_request_options(timeout=kwargs["timeout"], security={"bearer_auth": True}),
    )



def _settings_sent(target: DeploymentTarget, spec: Feature) -> dict[str, Any]:
    """The chat completion's arguments beside the messages: the same for every call of `spec` to `target`."""
    return {
        "model": target.deployment,
        "response_format": spec.response_format(),
        "max_completion_tokens": spec.max_completion_tokens,
        "temperature": spec.temperature,
    }


def request_parameters(*, target: DeploymentTarget, spec: Feature) -> dict[str, Any]:
    """What a call of `spec` to `target` sends beside the messages, for showing before sending
    (the playground's preview): the deployment (`model`), the API version of the URL, the
    temperature, the token cap and the answer's schema name. Built from the arguments the call
    itself passes (`_settings_sent`); never the endpoint's key, the credential or its variable."""
    sent = _settings_sent(target, spec)
    return {
        "model": sent["model"],
        "api_version": target.api_version,
        "temperature": sent["temperature"],
        "max_completion_tokens": sent["max_completion_tokens"],
        "response_format": f"{sent['response_format']['type']} {sent['response_format']['json_schema']['name']} (strict)",
    }


def _request_kwargs(
    *, target: DeploymentTarget, messages: Sequence[ChatMessage], spec: Feature, remaining: float | None
) -> dict[str, Any]:
    total = target.timeout_seconds if remaining is None else max(0.001, min(target.timeout_seconds, remaining))
    return {
        **_settings_sent(target, spec),
        "messages": list(messages),
        "timeout": openai.Timeout(total, connect=min(target.connect_timeout_seconds, total)),
    }


@dataclass
class _Success:
    output: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    request_id: str
    model: str
    status_code: int
    latency_ms: int = 0


def _request_id(headers: Mapping[str, str] | None, fallback: object = None) -> str | None:
    if headers is not None:
        for name in ("x-request-id", "apim-request-id"):
            value = headers.get(name)
            if value:
                return str(value)[:128]
    return str(fallback)[:128] if isinstance(fallback, str) and fallback else None


# The longest wait a Retry-After hint may ask for; a larger value is capped, not trusted.
MAX_RETRY_AFTER_SECONDS = 86_400.0


def _seconds(value: str, *, scale: float = 1.0) -> float | None:
    """A non-negative, finite number of seconds from a header value, or None."""
    try:
        seconds = float(value.strip()) / scale
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def _http_date_delay(value: str) -> float | None:
    """Seconds until an HTTP date (RFC 9110 `Retry-After: <date>`), or None if it is not one."""
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # an HTTP date is always GMT
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        delay = parsed.timestamp() - time.time()
    except (OverflowError, OSError, ValueError):
        return None
    return min(max(0.0, delay), MAX_RETRY_AFTER_SECONDS)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a 429 asks for, in seconds: `retry-after-ms`, else `retry-after` as seconds or
    an HTTP date. Anything else (`Retry-After: soon`) is no hint: None. Never raises."""
    value = headers.get("retry-after-ms")
    if value:
        seconds = _seconds(str(value), scale=1000.0)
        if seconds is not None:
            return seconds
    value = headers.get("retry-after")
    if not value:
        return None
    value = str(value)
    seconds = _seconds(value)
    return seconds if seconds is not None else _http_date_delay(value)


def _filtered_categories(results: object) -> list[str]:
    """Categories whose filter result says filtered (or, for detectors, detected and filtered)."""
    if not isinstance(results, Mapping):
        return []
    return sorted(
        str(name)[:64]
        for name, result in results.items()
        if isinstance(result, Mapping) and result.get("filtered") is True
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _aiohttp_cause(exc: BaseException) -> aiohttp.ClientError | None:
    """The aiohttp exception an SDK exception was raised from (through httpx's), if any."""
    cause = exc.__cause__
    for _ in range(4):
        if cause is None or isinstance(cause, aiohttp.ClientError):
            return cause
        cause = cause.__cause__
    return None


def _map_exception(exc: BaseException, target: DeploymentTarget) -> UpstreamFailure:
    """The typed failure for an exception raised while calling `target`. Reads no message text."""
    name = target.name
    if isinstance(exc, UpstreamFailure):
        # Drop the chain: an inner exception (e.g. a JSON decode error) may hold response text.
        exc.__cause__ = exc.__context__ = None
        return exc.with_traceback(None)
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
        cause = _aiohttp_cause(exc)
        if isinstance(cause, TimeoutError):  # aiohttp's connect and read timeouts
            return UpstreamTimeout(deployment=name)
        if isinstance(cause, aiohttp.ClientConnectionError):
            # The aiohttp adapter reports a refused or dropped connection as a connect timeout:
            # it is unavailability, as httpx reported it.
            return UpstreamUnavailable(deployment=name, reason="connection_error")
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamTimeout(deployment=name)
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamUnavailable(deployment=name, reason="connection_error")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        headers = exc.response.headers
        request_id = _request_id(headers)
        if status == 429:
            return RateLimited(
                deployment=name, status_code=status, request_id=request_id, retry_after=_retry_after(headers)
            )
        if status == 400 and exc.code == "content_filter":
            body = exc.body if isinstance(exc.body, Mapping) else {}
            inner = body.get("innererror") if isinstance(body.get("innererror"), Mapping) else {}
            results = inner.get("content_filter_result") or inner.get("content_filter_results")
            return ContentFiltered(
                deployment=name,
                status_code=status,
                request_id=request_id,
                stage="prompt",
                categories=_filtered_categories(results),
            )
        if status == 408:
            return UpstreamTimeout(deployment=name, status_code=status, request_id=request_id)
        if status >= 500:
            return UpstreamUnavailable(deployment=name, status_code=status, request_id=request_id)
        reason = {401: "auth_failed", 403: "auth_failed", 404: "deployment_not_found"}.get(status, "bad_request")
        return UpstreamError(deployment=name, reason=reason, status_code=status, request_id=request_id)
    if isinstance(exc, ClientAuthenticationError):
        return ConfigurationError(
            deployment=name, reason="credential_unavailable", detail="the Entra ID credential gave no token"
        )
    # Anything else from the SDK or the credential: a failure of this target, with its type only.
    return UpstreamError(deployment=name, reason=f"client_error:{type(exc).__name__}"[:64])


def _failure_of(exc: BaseException, target: DeploymentTarget) -> UpstreamFailure:
    """`_map_exception`, which must not fail: a fault while mapping (a header it cannot read)
    is a failure of this target too, never an exception escaping the failover loop."""
    try:
        return _map_exception(exc, target)
    except Exception as fault:  # noqa: BLE001 - see the docstring
        logger.error(
            "copilot upstream error mapping failed deployment=%s error=%s fault=%s",
            target.name, type(exc).__name__, type(fault).__name__,
        )
        return UpstreamError(deployment=target.name, reason=f"client_error:{type(exc).__name__}"[:64])


def _read_response(
    *, target: DeploymentTarget, spec: Feature, status_code: int, headers: Mapping[str, str], content: bytes
) -> _Success:
    """Check a 2xx response and validate the answer, or raise the failure it amounts to."""
    name = target.name
    request_id = _request_id(headers)
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    if not isinstance(data, Mapping):
        raise UpstreamError(deployment=name, reason="invalid_response", status_code=status_code, request_id=request_id)
    request_id = _request_id(headers, data.get("id"))
    usage = data.get("usage") if isinstance(data.get("usage"), Mapping) else {}
    tokens = {
        "prompt_tokens": _int(usage.get("prompt_tokens")),
        "completion_tokens": _int(usage.get("completion_tokens")),
    }
    common = {"deployment": name, "status_code": status_code, "request_id": request_id, **tokens}

    prompt_results = data.get("prompt_filter_results") or []
    for entry in prompt_results if isinstance(prompt_results, list) else []:
        results = entry.get("content_filter_results") if isinstance(entry, Mapping) else None
        if isinstance(results, Mapping) and "error" in results:
            raise UpstreamError(reason="content_filter_unavailable", retryable=True, **common)

    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, Mapping):
        raise UpstreamError(reason="invalid_response", **common)
    results = choice.get("content_filter_results")
    finish_reason = choice.get("finish_reason")
    categories = _filtered_categories(results)
    if finish_reason == "content_filter" or categories:
        raise ContentFiltered(stage="completion", categories=categories, **common)
    if isinstance(results, Mapping) and "error" in results:
        raise UpstreamError(reason="content_filter_unavailable", retryable=True, **common)
    if finish_reason == "length":
        raise UpstreamError(reason="output_truncated", **common)
    message = choice.get("message") if isinstance(choice.get("message"), Mapping) else {}
    if message.get("refusal"):
        raise UpstreamError(reason="model_refused", **common)
    output, problem = _validated_answer(spec, message.get("content"))
    if output is None:
        raise UpstreamError(reason="invalid_output", detail=problem, **common)
    model = data.get("model")
    return _Success(
        output=output,
        request_id=request_id or "",
        model=str(model)[:128] if isinstance(model, str) else "",
        status_code=status_code,
        **tokens,
    )


def _validated_answer(spec: Feature, text: object) -> tuple[dict[str, Any] | None, str]:
    """The validated answer, or None and what is wrong with it (never quoting the answer)."""
    if not isinstance(text, str):
        return None, f"{spec.slug}: the answer is missing"
    try:
        answer = json.loads(text)
    except (ValueError, RecursionError):
        return None, f"{spec.slug}: the answer is not valid JSON"
    try:
        return spec.validate(answer), ""
    except InvalidModelOutput as problem:
        return None, str(problem)


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _log_attempt(
    *, target: DeploymentTarget, feature: Feature, attempt: Attempt, failure: UpstreamFailure | None
) -> None:
    level = logging.INFO
    if isinstance(failure, ConfigurationError):
        level = logging.ERROR
    elif failure is not None and not isinstance(failure, ContentFiltered):
        level = logging.WARNING
    logger.log(
        level,
        "copilot upstream call feature=%s deployment=%s outcome=%s status=%s latency_ms=%d request_id=%s retryable=%s",
        feature.slug,
        target.name,
        attempt.outcome,
        attempt.status_code,
        attempt.latency_ms,
        attempt.request_id,
        failure.retryable if failure is not None else "-",
    )


def _check_call(targets: Sequence[DeploymentTarget], messages: Sequence[ChatMessage]) -> None:
    if not targets:
        raise ValueError("targets must not be empty: the caller decides there is no deployment")
    if not messages:
        raise ValueError("messages must not be empty")


def _remaining(started: float, deadline_seconds: float | None) -> float | None:
    if deadline_seconds is None:
        return None
    return deadline_seconds - (time.perf_counter() - started)


class _Failover:
    """The bookkeeping shared by the sync and async failover loops."""

    def __init__(self, *, feature: Feature, deadline_seconds: float | None) -> None:
        self.feature = feature
        self.deadline_seconds = deadline_seconds
        self.started = time.perf_counter()
        self.attempts: list[Attempt] = []
        self.last_failure: UpstreamFailure | None = None

    def remaining(self) -> float | None:
        return _remaining(self.started, self.deadline_seconds)

    def out_of_time(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def failed(self, target: DeploymentTarget, failure: UpstreamFailure, latency_ms: int) -> bool:
        """Record a failure; True when the next target may be tried."""
        failure.latency_ms = latency_ms
        attempt = failure.attempt()
        self.attempts.append(attempt)
        self.last_failure = failure
        _log_attempt(target=target, feature=self.feature, attempt=attempt, failure=failure)
        return failure.retryable

    def succeeded(self, target: DeploymentTarget, success: _Success) -> CallResult:
        attempt = Attempt(
            deployment=target.name,
            outcome="ok",
            status_code=success.status_code,
            latency_ms=success.latency_ms,
            request_id=success.request_id,
            prompt_tokens=success.prompt_tokens,
            completion_tokens=success.completion_tokens,
        )
        self.attempts.append(attempt)
        _log_attempt(target=target, feature=self.feature, attempt=attempt, failure=None)
        return CallResult(
            output=success.output,
            prompt_tokens=success.prompt_tokens,
            completion_tokens=success.completion_tokens,
            latency_ms=success.latency_ms,
            total_latency_ms=_elapsed_ms(self.started),
            target=target,
            request_id=success.request_id,
            model=success.model,
            attempts=tuple(self.attempts),
        )

    def give_up(self) -> UpstreamFailure:
        failure = self.last_failure or UpstreamTimeout(deployment=None, reason="deadline_exceeded")
        failure.attempts = tuple(self.attempts)
        return failure


def call_with_failover(
    *,
    targets: Sequence[DeploymentTarget],
    messages: Sequence[ChatMessage],
    feature: Feature | str,
    credential: Any = None,
    deadline_seconds: float | None = None,
) -> CallResult:
    """Call the feature on `targets` in order until one answers (sync variant).

    Returns the validated answer with usage metadata; raises the last `UpstreamFailure` (with
    `attempts`) when no target answered. `credential` is used for `entra_id` targets (default:
    the shared `DefaultAzureCredential`). `deadline_seconds` bounds the whole call, failover
    included.
    """
    _check_call(targets, messages)
    spec = get_feature(feature)
    run = _Failover(feature=spec, deadline_seconds=deadline_seconds)
    for target in targets:
        if run.out_of_time():
            break
        started = time.perf_counter()
        failure: UpstreamFailure | None = None
        try:
            if target.auth_mode == "api_key":
                read_api_key(target)
            client = _sync_client(target, _credential_for(target, credential))
            raw = client.chat.completions.with_raw_response.create(
                **_request_kwargs(target=target, messages=messages, spec=spec, remaining=run.remaining())
            )
            success = _read_response(
                target=target,
                spec=spec,
                status_code=raw.status_code,
                headers=raw.headers,
                content=raw.http_response.content,
            )
        except Exception as exc:  # noqa: BLE001 - every outcome is mapped; see _map_exception
            failure = _failure_of(exc, target)
        if failure is not None:
            if run.failed(target, failure, _elapsed_ms(started)):
                continue
            break
        success.latency_ms = _elapsed_ms(started)
        return run.succeeded(target, success)
    raise run.give_up()


async def acall_with_failover(
    *,
    targets: Sequence[DeploymentTarget],
    messages: Sequence[ChatMessage],
    feature: Feature | str,
    credential: Any = None,
    deadline_seconds: float | None = None,
) -> CallResult:
    """The async variant of `call_with_failover`, with the same guarantees.

    `credential` may be a sync or an async (`azure.identity.aio`) token credential.
    """
    _check_call(targets, messages)
    spec = get_feature(feature)
    run = _Failover(feature=spec, deadline_seconds=deadline_seconds)
    for target in targets:
        if run.out_of_time():
            break
        started = time.perf_counter()
        failure: UpstreamFailure | None = None
        try:
            if target.auth_mode == "api_key":
                read_api_key(target)
            client = await _async_client(target, _credential_for(target, credential))
            response = await _apost_chat_completion(
                client, _request_kwargs(target=target, messages=messages, spec=spec, remaining=run.remaining())
            )
            success = _read_response(
                target=target,
                spec=spec,
                status_code=response.status_code,
                headers=response.headers,
                content=response.content,
            )
        except Exception as exc:  # noqa: BLE001 - every outcome is mapped; see _map_exception
            failure = _failure_of(exc, target)
        if failure is not None:
            if run.failed(target, failure, _elapsed_ms(started)):
                continue
            break
        success.latency_ms = _elapsed_ms(started)
        return run.succeeded(target, success)
    raise run.give_up()

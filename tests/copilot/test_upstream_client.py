"""The upstream HTTP clients: aiohttp on the async path, one client per deployment per process
(per event loop), the connection limit from the settings, closed with their loop, and
aiohttp's transport errors mapped to the same contract errors as httpx's were."""

import asyncio
import socket
import threading
from collections.abc import Iterator

import aiohttp
import httpx2
import openai
import pytest
from django.test import override_settings
from openai._vendor.httpx_aiohttp import AiohttpTransport

from copilot_admin.copilot import azure
from copilot_admin.copilot.azure import UpstreamTimeout, UpstreamUnavailable
from copilot_admin.copilot.targets import deployment_target
from copilot_admin.regions.models import AzureDeployment

MESSAGES = [{"role": "user", "content": "ticket"}]


def run_calls(*targets: azure.DeploymentTarget) -> dict:
    """Call each target in turn on one fresh event loop; the loop's clients, by deployment name,
    as they were before the loop shut down."""

    async def calls() -> dict:
        for target in targets:
            await azure.acall_with_failover(targets=[target], messages=MESSAGES, feature="prioritize")
        pool = azure._async_clients[asyncio.get_running_loop()]
        return {key[0]: client for key, client in pool.clients.items()}

    return asyncio.run(calls())


def transport_of(client: openai.AsyncAzureOpenAI) -> AiohttpTransport:
    return client._client._transport


def test_the_async_client_sends_over_aiohttp(sim, make_target):
    clients = run_calls(make_target())
    (client,) = clients.values()
    assert isinstance(client._client, openai.DefaultAioHttpClient)
    transport = transport_of(client)
    assert isinstance(transport, AiohttpTransport)
    # It did carry the call: the aiohttp session it opened is the one the request went through.
    assert isinstance(transport.client, aiohttp.ClientSession)
    assert len(sim.requests()) == 1


def test_one_client_per_deployment_reused_across_calls(sim, make_target, monkeypatch):
    built = []
    new_client = azure._new_async_client
    monkeypatch.setattr(azure, "_new_async_client", lambda target, credential: built.append(target.name)
                        or new_client(target, credential))
    a, b = make_target("gpt-4o-a"), make_target("gpt-4o-b")

    clients = run_calls(a, a, b, a, b)

    assert built == ["sim-gpt-4o-a", "sim-gpt-4o-b"]
    assert set(clients) == {"sim-gpt-4o-a", "sim-gpt-4o-b"}
    assert clients["sim-gpt-4o-a"] is not clients["sim-gpt-4o-b"]
    assert len(sim.requests()) == 5


def test_the_sync_client_is_one_per_deployment_too(sim, make_target):
    azure.close_clients()
    a, b = make_target("gpt-4o-a"), make_target("gpt-4o-b")
    for target in (a, a, b):
        azure.call_with_failover(targets=[target], messages=MESSAGES, feature="prioritize")
    assert sorted(key[0] for key in azure._sync_clients) == ["sim-gpt-4o-a", "sim-gpt-4o-b"]
    azure.close_clients()


def test_the_connection_limit_comes_from_the_setting(sim, simulator_url, api_key):
    deployment = AzureDeployment(name="limited", endpoint=simulator_url, deployment="gpt-4o",
                                 api_version="2024-10-21", auth_mode="api_key", api_key_env="AZURE_OPENAI_KEY_TEST")
    with override_settings(COPILOT_UPSTREAM_MAX_CONNECTIONS=7):
        target = deployment_target(deployment)
    assert target.max_connections == 7

    async def limit_enforced() -> int:
        await azure.acall_with_failover(targets=[target], messages=MESSAGES, feature="prioritize")
        (client,) = azure._async_clients[asyncio.get_running_loop()].clients.values()
        return transport_of(client).client.connector.limit  # what aiohttp enforces

    assert asyncio.run(limit_enforced()) == 7


def test_no_http_client_library_logs_below_warning(settings):
    """Their DEBUG records quote request bodies (ticket text)."""
    for name in ("openai", "httpx2", "httpcore2", "aiohttp"):
        assert settings.LOGGING["loggers"][name]["level"] == "WARNING"


def test_the_default_limit_is_sized_for_500_calls_in_flight(settings):
    assert settings.COPILOT_UPSTREAM_MAX_CONNECTIONS == 500


def test_clients_close_when_their_loop_shuts_down(sim, make_target):
    (client,) = run_calls(make_target()).values()
    assert client.is_closed()
    assert transport_of(client).client.closed
    assert len(azure._async_clients) == 0


def test_aclose_clients_closes_this_loops_clients_now(sim, make_target):
    target = make_target()

    async def scenario():
        await azure.acall_with_failover(targets=[target], messages=MESSAGES, feature="prioritize")
        first = azure._async_clients[asyncio.get_running_loop()].clients
        (client,) = first.values()
        await azure.aclose_clients()
        closed = client.is_closed()
        await azure.acall_with_failover(targets=[target], messages=MESSAGES, feature="prioritize")
        (again,) = azure._async_clients[asyncio.get_running_loop()].clients.values()
        return closed, again is not client

    assert asyncio.run(scenario()) == (True, True)


# --- transport errors: the same contract as before -------------------------------------------


@pytest.fixture
def hanging_up_port() -> Iterator[int]:
    """A loopback port that accepts a connection, reads the request and closes without answering."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_a_dropped_connection_is_unavailable_not_a_timeout(call, make_target, hanging_up_port):
    target = make_target(endpoint=f"http://127.0.0.1:{hanging_up_port}")
    with pytest.raises(UpstreamUnavailable) as caught:
        call(targets=[target], messages=MESSAGES, feature="prioritize")
    assert (caught.value.code, caught.value.http_status, caught.value.reason) == (
        "upstream_unavailable", 503, "connection_error"
    )
    assert caught.value.retryable


def test_a_read_timeout_is_a_timeout(call, sim, make_target):
    sim.set_behaviour("slow", delay_ms=3000)
    with pytest.raises(UpstreamTimeout) as caught:
        call(targets=[make_target(timeout_seconds=0.3)], messages=MESSAGES, feature="prioritize")
    assert (caught.value.code, caught.value.http_status) == ("upstream_timeout", 504)


def sdk_error(sdk: type[openai.APIConnectionError], httpx_error: type[Exception], aiohttp_error: Exception):
    """An SDK exception raised the way the SDK and the aiohttp adapter chain them."""
    request = httpx2.Request("POST", "http://upstream.invalid/")
    try:
        try:
            try:
                raise aiohttp_error
            except Exception as inner:
                raise httpx_error("mapped") from inner
        except Exception as middle:
            raise sdk(request=request) from middle
    except openai.APIConnectionError as outer:
        return outer


def connector_error(error: OSError) -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(aiohttp.client_reqrep.ConnectionKey(
        "upstream.invalid", 443, True, True, None, None, None), error)


@pytest.mark.parametrize("exc, expected", [
    # The adapter turns every aiohttp connection error into httpx's ConnectTimeout.
    (sdk_error(openai.APITimeoutError, httpx2.ConnectTimeout, connector_error(ConnectionRefusedError())),
     (UpstreamUnavailable, 503, "connection_error")),
    (sdk_error(openai.APITimeoutError, httpx2.ConnectTimeout, aiohttp.ServerDisconnectedError()),
     (UpstreamUnavailable, 503, "connection_error")),
    (sdk_error(openai.APIConnectionError, httpx2.ReadError, aiohttp.ClientPayloadError("cut")),
     (UpstreamUnavailable, 503, "connection_error")),
    (sdk_error(openai.APITimeoutError, httpx2.TimeoutException, aiohttp.ConnectionTimeoutError()),
     (UpstreamTimeout, 504, "timeout")),
    (sdk_error(openai.APITimeoutError, httpx2.ReadTimeout, aiohttp.SocketTimeoutError()),
     (UpstreamTimeout, 504, "timeout")),
    # httpx's own, as before.
    (sdk_error(openai.APIConnectionError, httpx2.ConnectError, ConnectionRefusedError()),
     (UpstreamUnavailable, 503, "connection_error")),
    (sdk_error(openai.APITimeoutError, httpx2.ConnectTimeout, TimeoutError()), (UpstreamTimeout, 504, "timeout")),
])
def test_aiohttp_errors_map_to_the_same_contract_errors(exc, expected, make_target):
    failure = azure._map_exception(exc, make_target())
    assert (type(failure), failure.http_status, failure.reason) == expected

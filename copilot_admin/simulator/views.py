"""The simulator mounted inside the project at /_simulator/ (development only: `make run` sets
`COPILOT_SIMULATOR`, and only then do the URLs import this module)."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from copilot_admin.simulator.server import SimulatorApp, SimulatorState


@lru_cache(maxsize=2)
def _simulator(control_token: str) -> SimulatorApp:
    """The mounted simulator; its control endpoints (request log, behaviours) need
    `COPILOT_SIMULATOR_TOKEN`, and without one they are not served."""
    return SimulatorApp(SimulatorState(max_recorded=1000, control_token=control_token or None))


@csrf_exempt
async def simulator_view(request, path: str = ""):
    """Serve the Azure OpenAI simulator inside the project (settings.COPILOT_SIMULATOR only).

    Translates the Django request into one ASGI call of the simulator app, so it works under
    runserver (WSGI) and uvicorn alike. The demo deployments point here. The completion endpoint
    checks the api-key like Azure; the control endpoints need the `X-Simulator-Token` header
    holding `COPILOT_SIMULATOR_TOKEN` (403 without it; 404 when no token is configured).
    """
    sent_body = False

    async def receive():
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects mid-request here
        return {"type": "http.disconnect"}

    reply = {"status": 500, "headers": [], "body": []}

    async def send(message):
        if message["type"] == "http.response.start":
            reply["status"] = message["status"]
            reply["headers"] = message.get("headers", [])
        elif message["type"] == "http.response.body":
            reply["body"].append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": "/" + path,
        "raw_path": ("/" + path).encode(),
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()],
        "client": (request.META.get("REMOTE_ADDR", "127.0.0.1"), 0),
        "server": ("127.0.0.1", 0),
    }
    await _simulator(settings.COPILOT_SIMULATOR_TOKEN)(scope, receive, send)
    response = HttpResponse(b"".join(reply["body"]), status=reply["status"])
    for name, value in reply["headers"]:
        if name.lower() not in (b"content-length",):
            response[name.decode("latin-1")] = value.decode("latin-1")
    return response



"""The copilot call's lean ASGI route (copilot/lean_asgi.py, issue 10).

Driven through the project's real ASGI application (`copilot_admin.asgi.application`), the way
uvicorn calls it: which requests take the lean route, that it drops the browser-only middleware
(no session, no CSRF, no cookies set), and that every refusal and success answers exactly as the
normal route does (status, error body, headers) and leaves the same audit entry.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from django.conf import settings
from django.test import override_settings
from knox.models import AuthToken

from copilot_admin.asgi import application, django_application
from copilot_admin.audit.models import AuditEntry
from copilot_admin.copilot import lean_asgi
from copilot_admin.copilot.lean_asgi import LeanCallHandler, LeanCallRouter
from copilot_admin.copilot.services import orm_pool_shutdown
from copilot_admin.usage import services as usage
from copilot_admin.usage.models import UsageRecord
from tests.conftest import require_redis
from tests.copilot.test_call_faults import ticket, us_deployment  # noqa: F401  (the same ticket and deployment)
from tests.regions.fixtures import deployment_factory  # noqa: F401
from tests.usage.helpers import set_policy

PATH = "/api/v1/tenants/alpha/copilot/summarize/"

db_for_threads = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the call's database work runs on the ORM pool


@pytest.fixture(autouse=True)
def _pool_closed():
    yield
    orm_pool_shutdown()  # its threads' connections, before the test database goes


def scope_for(path: str = PATH, *, method: str = "POST", token: str | None = None, cookie: str | None = None,
              body: bytes = b"") -> dict:
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
    }


def serve(app, scope: dict, body: bytes = b"") -> tuple[int, dict[str, str], dict]:
    """One request through an ASGI application: (status, headers, JSON body)."""
    sent: list[dict] = []

    async def run() -> None:
        incoming = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if incoming:
                return incoming.pop(0)
            await asyncio.Event().wait()  # no disconnect

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, json.loads(content) if content else {}


def post(app, token: str | None, company, *, cookie: str | None = None):
    body = json.dumps(ticket(company)).encode()
    return serve(app, scope_for(token=token, cookie=cookie, body=body), body)


def token_for(member) -> str:
    return AuthToken.objects.create(user=member.user)[1]


@pytest.fixture
def routes(monkeypatch):
    """Which route served each request through `application`."""
    served: list[str] = []
    for name in ("lean", "application"):
        inner = getattr(application, name)

        async def spy(scope, receive, send, inner=inner, name=name):
            served.append(name)
            return await inner(scope, receive, send)

        monkeypatch.setattr(application, name, spy)
    return served


def _comparable(answer):
    status, headers, body = answer
    error = dict(body.get("error", {}))
    error.pop("request_id", None)
    headers = {k: v for k, v in headers.items() if k not in ("content-length",)}
    if "retry-after" in headers:  # the seconds left in the window: a second may pass between the two
        headers["retry-after"] = int(headers["retry-after"]) > 0
    if "content-security-policy" in headers:  # the same directives, in no fixed order
        headers["content-security-policy"] = sorted(headers["content-security-policy"].split("; "))
    return status, headers, error or sorted(body)


def _last_call_entry():
    entry = AuditEntry.unscoped_objects.filter(action="copilot.call").order_by("-id").first()
    metadata = {k: v for k, v in entry.metadata.items() if k not in ("request_id", "retry_after")}
    return (entry.outcome, entry.actor_id, entry.actor_type, entry.remote_addr, entry.object_id, metadata)


# --- routing ----------------------------------------------------------------------------------


def test_the_lean_route_drops_only_browser_only_middleware():
    assert settings.API_CALL_MIDDLEWARE == lean_asgi.api_call_middleware(settings.MIDDLEWARE)
    for path in ("django.contrib.sessions.middleware.SessionMiddleware", "django.middleware.csrf.CsrfViewMiddleware",
                 "django.contrib.auth.middleware.AuthenticationMiddleware",
                 "django.contrib.messages.middleware.MessageMiddleware"):
        assert path in settings.MIDDLEWARE and path not in settings.API_CALL_MIDDLEWARE
    for path in ("django.middleware.security.SecurityMiddleware", "copilot_admin.core.api_errors.APIErrorMiddleware",
                 "copilot_admin.core.middleware.NoStoreMiddleware", "copilot_admin.core.middleware.RequestScopeMiddleware"):
        assert path in settings.API_CALL_MIDDLEWARE
    assert isinstance(application, LeanCallRouter) and isinstance(application.lean, LeanCallHandler)


@pytest.mark.parametrize(("scope", "lean"), [
    (scope_for(token="t"), True),
    (scope_for("/api/v1/tenants/alpha/copilot/time-entry/", token="t"), True),
    (scope_for(token="t", cookie="theme=dark"), True),
    (scope_for(), False),  # no bearer credential
    (scope_for(token="t", cookie=f"{settings.SESSION_COOKIE_NAME}=abc"), False),  # a browser's session
    (scope_for(token="t", cookie=f"theme=dark; {settings.SESSION_COOKIE_NAME}=abc"), False),
    (scope_for(token="t", method="GET"), False),
    (scope_for("/api/v1/tenants/alpha/copilot/summarize/x/", token="t"), False),
    (scope_for("/api/v1/tenants/alpha/copilot/unknown-feature/", token="t"), False),
    (scope_for("/api/v1/tenants/alpha/users/", token="t"), False),
    ({"type": "lifespan"}, False),
])
def test_which_requests_take_the_lean_route(scope, lean):
    assert application.is_lean(scope) is lean


def test_basic_authorization_is_not_lean():
    scope = scope_for()
    scope["headers"].append((b"authorization", b"Basic dXNlcjpwdw=="))
    assert application.is_lean(scope) is False


def test_a_lean_handler_refuses_middleware_it_cannot_run_without_a_hop():
    from django.core.exceptions import ImproperlyConfigured

    sessions = ["django.contrib.sessions.middleware.SessionMiddleware"]
    with override_settings(API_CALL_MIDDLEWARE=sessions), pytest.raises(ImproperlyConfigured):
        LeanCallHandler()


@db_for_threads
def test_a_bearer_call_takes_the_lean_route_and_sets_no_cookie(tenant_a, us_deployment, sim, routes):
    status, headers, body = post(application, token_for(tenant_a.members["tech"]), tenant_a.companies[0])
    assert status == 200, body
    assert routes == ["lean"]
    assert "set-cookie" not in headers and "cookie" not in headers.get("vary", "").lower()
    assert headers["cache-control"] == "no-store, private"
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).filter(outcome="ok").count() == 1


@db_for_threads
def test_a_request_with_a_session_cookie_goes_the_normal_way(tenant_a, us_deployment, sim, routes):
    cookie = f"{settings.SESSION_COOKIE_NAME}=not-a-session"
    status, _, body = post(application, token_for(tenant_a.members["tech"]), tenant_a.companies[0], cookie=cookie)
    assert routes == ["application"]
    assert status == 200, body  # the bearer credential still authenticates; the unknown session is ignored


@db_for_threads
def test_a_request_without_a_token_goes_the_normal_way(tenant_a, us_deployment, sim, routes):
    status, _, body = post(application, None, tenant_a.companies[0])
    assert routes == ["application"]
    assert (status, body["error"]["code"]) == (401, "not_authenticated")


# --- parity: the same answer and audit through both routes -----------------------------------


def _both(make_request):
    """The answer of `make_request(app)` through the lean handler and through the normal one."""
    return make_request(application.lean), make_request(django_application)


@db_for_threads
def test_a_success_answers_alike(tenant_a, us_deployment, sim):
    token = token_for(tenant_a.members["tech"])
    lean, normal = _both(lambda app: post(app, token, tenant_a.companies[0]))
    assert lean[0] == normal[0] == 200
    assert _comparable(lean) == _comparable(normal)
    assert lean[2]["usage"] == normal[2]["usage"] and lean[2]["zone"] == normal[2]["zone"]
    entries = list(AuditEntry.unscoped_objects.filter(action="copilot.call").values_list("outcome", "actor_id", "actor_type", "remote_addr"))
    assert len(entries) == 2 and entries[0] == entries[1]
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).filter(outcome="ok").count() == 2


def _refused_alike(make_request, status: int, code: str | None, *, audited: bool = True, session_read: bool = False):
    before = AuditEntry.unscoped_objects.filter(action="copilot.call").count()
    lean = make_request(application.lean)
    lean_entry = _last_call_entry() if audited else None
    normal = make_request(django_application)
    assert lean[0] == normal[0] == status, (lean, normal)
    if code is not None:
        assert lean[2]["error"]["code"] == code
    lean_seen, normal_seen = _comparable(lean), _comparable(normal)
    if session_read:  # the normal route looked for a session (DRF's SessionAuthentication): Vary: Cookie
        assert normal_seen[1]["vary"] == lean_seen[1]["vary"] + ", Cookie"
        normal_seen[1]["vary"] = lean_seen[1]["vary"]
    assert lean_seen[1] == normal_seen[1], {k for k in {*lean_seen[1], *normal_seen[1]}
                                            if lean_seen[1].get(k) != normal_seen[1].get(k)}
    assert lean_seen == normal_seen
    if audited:
        assert AuditEntry.unscoped_objects.filter(action="copilot.call").count() == before + 2
        assert lean_entry == _last_call_entry()
    else:
        assert AuditEntry.unscoped_objects.filter(action="copilot.call").count() == before
    return lean, normal


@db_for_threads
def test_no_token_is_refused_alike(tenant_a, us_deployment, sim):
    # Such a request never takes the lean route (test_which_requests_take_the_lean_route); sent to
    # the lean handler anyway, it is refused the same way, without the session lookup's Vary.
    _refused_alike(lambda app: post(app, None, tenant_a.companies[0]), 401, "not_authenticated", audited=False,
                   session_read=True)


@db_for_threads
def test_a_revoked_token_is_refused_alike(tenant_a, us_deployment, sim):
    instance, token = AuthToken.objects.create(user=tenant_a.members["tech"].user)
    assert post(application.lean, token, tenant_a.companies[0])[0] == 200  # cached while valid
    instance.delete()  # revoked (knox logout)
    _refused_alike(lambda app: post(app, token, tenant_a.companies[0]), 401, None, audited=False)


@db_for_threads
def test_another_tenants_member_is_refused_alike(tenant_a, tenant_b, us_deployment, sim):
    token = token_for(tenant_b.members["tech"])
    _refused_alike(lambda app: post(app, token, tenant_a.companies[0]), 404, "not_found", audited=False)


@db_for_threads
def test_a_role_without_the_feature_is_refused_alike(tenant_a, us_deployment, sim):
    token = token_for(tenant_a.members["auditor"])
    _refused_alike(lambda app: post(app, token, tenant_a.companies[0]), 403, "permission_denied")


@db_for_threads
def test_a_suspended_tenant_is_refused_alike(tenant_a, us_deployment, sim):
    token = token_for(tenant_a.members["tech"])
    tenant_a.tenant.status = "suspended"
    tenant_a.tenant.save()
    _refused_alike(lambda app: post(app, token, tenant_a.companies[0]), 403, "tenant_suspended")


@db_for_threads
def test_suspended_copilot_access_is_refused_alike(tenant_a, us_deployment, sim, monkeypatch):
    token = token_for(tenant_a.members["tech"])
    monkeypatch.setattr(usage, "copilot_access_state", lambda membership: "suspended")
    _refused_alike(lambda app: post(app, token, tenant_a.companies[0]), 403, "access_suspended")


@db_for_threads
def test_a_limit_is_refused_alike_with_retry_after(tenant_a, us_deployment, sim, limit_clock):
    set_policy(user_requests_per_minute=1, max_user_requests_per_minute=1)
    token = token_for(tenant_a.members["tech"])
    assert post(application.lean, token, tenant_a.companies[0])[0] == 200
    lean, normal = _refused_alike(lambda app: post(app, token, tenant_a.companies[0]), 429, "rate_limited")
    assert lean[1]["retry-after"] and normal[1]["retry-after"]


@db_for_threads
def test_a_company_out_of_scope_is_refused_alike(tenant_a, tenant_b, us_deployment, sim):
    token = token_for(tenant_a.members["tech"])
    _refused_alike(lambda app: post(app, token, tenant_b.companies[0]), 403, "company_out_of_scope")


@db_for_threads
def test_a_warm_lean_call_reads_its_access_chain_in_one_cache_round_trip(tenant_a, us_deployment, sim,
                                                                        access_cache_trips):
    # Measured in the production configuration: without Redis the limit counters are database
    # rows and the local memory cache's get_many is one get per key (no round trips to count).
    require_redis()
    # As tests/copilot/test_access_cache.py counts it, here with the hops on the ORM pool's threads
    # (the read plan's snapshot is shared by the request's hops).
    trips = access_cache_trips
    token = token_for(tenant_a.members["tech"])
    for _ in range(2):
        assert post(application, token, tenant_a.companies[0])[0] == 200
    trips.clear()
    assert post(application, token, tenant_a.companies[0])[0] == 200
    assert trips == ["get_many"]


# --- thread hops ------------------------------------------------------------------------------


@db_for_threads
def test_a_call_makes_two_thread_hops_one_before_the_upstream_and_one_after(tenant_a, us_deployment, sim,
                                                                            monkeypatch):
    """Authentication, the resolver and the admission share one hop (the view's `prepare`); the
    bookkeeping is the other. A third hop (admitting from the handler) fails this."""
    from copilot_admin.copilot import services

    hops: list[str] = []
    real = services._in_pool_thread

    def counted(fn, args, kwargs):
        hops.append(getattr(fn, "__name__", repr(fn)))
        return real(fn, args, kwargs)

    orm_pool_shutdown()  # the next hop builds its wrapper around the counted function
    monkeypatch.setattr(services, "_in_pool_thread", counted)
    status, _, body = post(application, token_for(tenant_a.members["tech"]), tenant_a.companies[0])
    assert status == 200, body
    assert hops == ["_let_in_and_prepare", "copilot_complete"]
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).get().outcome == "ok"


@db_for_threads
def test_a_client_leaving_during_the_admitting_hop_leaves_the_call_recorded_cancelled(tenant_a, us_deployment,
                                                                                   monkeypatch):
    """The admission runs in the hop that authenticated the request: the client going away
    meanwhile (Django cancels the request's task) lets it finish, then records the admitted call
    as cancelled (estimate kept) instead of leaving a reservation nobody settles; nothing goes
    upstream."""
    from copilot_admin.copilot import azure
    from copilot_admin.copilot.api import CopilotCallView

    upstream_calls = []

    async def upstream(**kwargs):
        upstream_calls.append(kwargs)

    monkeypatch.setattr(azure, "acall_with_failover", upstream)
    real_prepare = CopilotCallView.prepare
    body = json.dumps(ticket(tenant_a.companies[0])).encode()
    scope = scope_for(token=token_for(tenant_a.members["tech"]), body=body)

    async def scenario():
        loop = asyncio.get_running_loop()
        admitting, proceed = asyncio.Event(), asyncio.Event()

        def prepare(view):
            loop.call_soon_threadsafe(admitting.set)
            asyncio.run_coroutine_threadsafe(proceed.wait(), loop).result()
            real_prepare(view)

        monkeypatch.setattr(CopilotCallView, "prepare", prepare)
        sent: list[dict] = []
        incoming = [{"type": "http.request", "body": body, "more_body": False}]
        gone = asyncio.Event()

        async def receive():
            if incoming:
                return incoming.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        request = asyncio.ensure_future(application.lean(scope, receive, send))
        await admitting.wait()
        gone.set()  # the client goes away: Django cancels the request's task while the hop is admitting
        for _ in range(1000):  # until the cancellation has reached that task (loop turns, not time)
            if any(task.get_coro().__name__ == "process_request" and task.cancelling()
                   for task in asyncio.all_tasks()):
                break
            await asyncio.sleep(0)
        else:
            pytest.fail("the request's task was never cancelled")
        proceed.set()
        await request
        return sent

    assert asyncio.run(scenario()) == []
    assert upstream_calls == []
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert (record.outcome, record.error_code) == ("cancelled", "client_disconnected")
    entry = AuditEntry.unscoped_objects.filter(action="copilot.call").get()
    assert entry.metadata["outcome"] == "client_disconnected"

"""Login, logout, throttling of failed logins, session expiry, tenant switching, API tokens,
and tenant suspension ending sessions and tokens."""

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from copilot_admin.platform import services as platform_services
from tenants.models import TenantStatus, UserSession
from tests.conftest import api_client_for
from tests.factories import PASSWORD, add_member

LOGIN = "/login/"


def login(client, email, password=PASSWORD, ip="10.0.0.1"):
    return client.post(LOGIN, {"username": email, "password": password}, REMOTE_ADDR=ip)


def test_login_lands_on_the_only_tenant_and_logout_ends_session(tenant_a):
    client = Client()
    response = login(client, "tech@alpha.test")
    assert response.status_code == 302
    home = client.get(response["Location"])
    assert home.status_code == 302 and home["Location"] == "/t/alpha/"
    assert client.get("/t/alpha/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/t/alpha/").status_code == 302


def test_email_login_is_case_insensitive(tenant_a):
    assert login(Client(), "TECH@Alpha.test").status_code == 302


def test_wrong_password_shows_error(tenant_a):
    response = login(Client(), "tech@alpha.test", "wrong-password")
    assert response.status_code == 200 and "correct" in response.content.decode()


TOKEN = "/api/v1/auth/token/"


def token_login(email, password=PASSWORD, ip="10.0.0.1"):
    return APIClient().post(TOKEN, {"email": email, "password": password}, format="json", REMOTE_ADDR=ip)


class Clock:
    """The login throttle's clock, moved by hand: no test waits for real time."""

    def __init__(self):
        self.now = 1_900_000_000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    clock = Clock()
    with mock.patch("copilot_admin.directory.login_guard._now", lambda: clock.now):
        yield clock


def fail_from_many_addresses(email, count, prefix="10.7"):
    """`count` failures of `email`, each from its own address (no pair gets locked)."""
    for i in range(count):
        assert token_login(email, "wrong", ip=f"{prefix}.{i // 250}.{i % 250 + 1}").status_code == 401


def test_failed_logins_lock_the_account_only_from_that_address(tenant_a):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(Client(), "tech@alpha.test", "wrong", ip="10.1.0.1")
    # Right password, same address: that pair is locked, and says for how long.
    locked = login(Client(), "tech@alpha.test", ip="10.1.0.1")
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert 0 < int(locked["Retry-After"]) <= settings.AXES_COOLOFF_TIME.total_seconds()
    # The owner, from another address, with the right password, gets in.
    assert login(Client(), "tech@alpha.test", ip="10.9.9.9").status_code == 302


def test_api_failed_logins_lock_the_account_only_from_that_address(tenant_a):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert token_login("tech@alpha.test", "nope", ip="10.3.0.1").status_code in (401, 429)
    locked = token_login("tech@alpha.test", ip="10.3.0.1")
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "locked_out"
    assert 0 < int(locked["Retry-After"]) <= settings.AXES_COOLOFF_TIME.total_seconds()
    assert token_login("tech@alpha.test", ip="10.3.0.2").status_code == 201


def test_failed_logins_from_an_address_do_not_lock_other_accounts_there(tenant_a):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(Client(), "tech@alpha.test", "wrong", ip="10.2.0.1")
    assert login(Client(), "tech@alpha.test", ip="10.2.0.1").status_code == 429
    assert login(Client(), "admin@alpha.test", ip="10.2.0.1").status_code == 302
    assert token_login("admin@alpha.test", ip="10.2.0.1").status_code == 201


def test_an_account_attacked_from_many_addresses_is_slowed_then_lets_the_owner_in(tenant_a, clock):
    fail_from_many_addresses("tech@alpha.test", settings.LOGIN_THROTTLE_AFTER_FAILURES)
    # Inside the delay even the right password is refused, without being checked, from a new address.
    throttled = token_login("tech@alpha.test", ip="10.8.0.1")
    assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "login_throttled"
    assert throttled["Retry-After"] == "1"
    # Refused attempts are not failures: they neither lengthen the delay nor lock the owner's address.
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        assert token_login("tech@alpha.test", "wrong", ip="10.8.0.1")["Retry-After"] == "1"
    clock.advance(1)
    assert token_login("tech@alpha.test", ip="10.8.0.1").status_code == 201


def test_the_login_delay_grows_and_is_capped(tenant_a, clock, settings):
    settings.LOGIN_THROTTLE_MAX_SECONDS = 8
    fail_from_many_addresses("tech@alpha.test", settings.LOGIN_THROTTLE_AFTER_FAILURES)
    waits = []
    for attempt in range(5):
        waits.append(int(token_login("tech@alpha.test", ip=f"10.8.1.{attempt + 1}")["Retry-After"]))
        clock.advance(waits[-1])
        assert token_login("tech@alpha.test", "wrong", ip=f"10.8.2.{attempt + 1}").status_code == 401
    assert waits == [1, 2, 4, 8, 8]
    clock.advance(8)
    assert token_login("tech@alpha.test", ip="10.8.3.1").status_code == 201


def test_one_password_check_per_delay(tenant_a, clock):
    """Once the delay is over, the first attempt is checked; the others that arrive before its
    outcome are refused (a distributed guesser gets one guess per delay)."""
    fail_from_many_addresses("tech@alpha.test", settings.LOGIN_THROTTLE_AFTER_FAILURES)
    clock.advance(1)
    from copilot_admin.directory.login_guard import login_throttle_admit

    assert login_throttle_admit("tech@alpha.test") == 0
    assert login_throttle_admit("tech@alpha.test") == 1


def test_the_login_page_says_how_long_to_wait(tenant_a, clock):
    fail_from_many_addresses("tech@alpha.test", settings.LOGIN_THROTTLE_AFTER_FAILURES)
    page = login(Client(), "tech@alpha.test", ip="10.8.0.1")
    assert page.status_code == 429 and page["Retry-After"] == "1"
    assert "Wait 1 second," in page.content.decode()
    clock.advance(1)
    assert login(Client(), "tech@alpha.test", ip="10.8.0.1").status_code == 302


def test_lockouts_are_visible_to_the_tenant_admin_and_can_be_lifted(tenant_a, tenant_b, clock):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(Client(), "tech@alpha.test", "wrong", ip="10.4.0.1")
        login(Client(), "tech@bravo.test", "wrong", ip="10.5.0.1")
    fail_from_many_addresses(
        "tech@alpha.test", settings.LOGIN_THROTTLE_AFTER_FAILURES - settings.AXES_FAILURE_LIMIT, prefix="10.6"
    )
    assert login(Client(), "tech@alpha.test", ip="10.4.9.9").status_code == 429  # delayed
    admin = Client()
    admin.force_login(tenant_a.members["admin"].user)
    page = admin.get("/t/alpha/security/").content.decode()
    assert "tech@alpha.test" in page and "locked out" in page
    assert "tech@bravo.test" not in page
    admin.post("/t/alpha/security/", {"username": "tech@alpha.test"})
    # Lifting ends the pair lockout and the account's delay.
    assert login(Client(), "tech@alpha.test", ip="10.4.0.1").status_code == 302
    # A foreign tenant's account cannot be unlocked from here.
    admin.post("/t/alpha/security/", {"username": "tech@bravo.test"})
    assert login(Client(), "tech@bravo.test", ip="10.5.0.1").status_code == 429


def test_a_client_address_that_is_not_an_ip_falls_back_to_the_socket_address(tenant_a, settings):
    """Behind a proxy count that lets the client write the hop, a non-IP value is not used:
    failures count against the socket address, and nothing crashes (page and API)."""
    settings.TRUSTED_PROXY_COUNT = 1
    bad = {"HTTP_X_FORWARDED_FOR": '=HYPERLINK("http://evil.example","x")', "REMOTE_ADDR": "10.10.0.1"}
    page = Client().post(LOGIN, {"username": "tech@alpha.test", "password": "wrong"}, **bad)
    assert page.status_code == 200
    api = APIClient().post(TOKEN, {"email": "tech@alpha.test", "password": "wrong"}, format="json", **bad)
    assert api.status_code == 401 and api.json()["error"]["code"] == "invalid_credentials"
    from axes.models import AccessAttempt

    assert list(AccessAttempt.objects.values_list("ip_address", "failures_since_start")) == [("10.10.0.1", 2)]
    assert Client().post(LOGIN, {"username": "tech@alpha.test", "password": PASSWORD}, **bad).status_code == 302
    assert APIClient().post(TOKEN, {"email": "tech@alpha.test", "password": PASSWORD}, format="json", **bad).status_code == 201


def test_sessions_expire_after_inactivity(tenant_a):
    assert settings.SESSION_SAVE_EVERY_REQUEST and settings.SESSION_COOKIE_AGE == 30 * 60
    client = Client()
    login(client, "tech@alpha.test")
    assert client.get("/t/alpha/").status_code == 200
    session = UserSession.objects.get(user_id=tenant_a.members["tech"].user_id)
    assert session.expire_date > timezone.now() + timedelta(minutes=29)
    session.expire_date = timezone.now() - timedelta(seconds=1)
    session.save()
    assert client.get("/t/alpha/").status_code == 302


def test_user_switches_between_its_tenants_only(tenant_a, tenant_b):
    user = tenant_a.members["tech"].user
    add_member(tenant_b.tenant, "Technician", email=user.email)
    client = Client()
    client.force_login(user)
    home = client.get("/")
    assert home.status_code == 200
    body = home.content.decode()
    assert "Alpha MSP" in body and "Bravo MSP" in body
    assert client.get("/t/alpha/").status_code == 200 and client.get("/t/bravo/").status_code == 200
    switcher = client.get("/t/bravo/").content.decode()
    assert 'href="/t/alpha/"' in switcher
    # A tenant it does not belong to is neither listed nor reachable.
    from tests.conftest import build_tenant

    build_tenant("charlie", "Charlie MSP")
    assert "Charlie MSP" not in client.get("/").content.decode()
    assert client.get("/t/charlie/").status_code == 404


def test_token_is_stored_hashed_expires_and_is_revocable(tenant_a):
    api = APIClient()
    response = api.post("/api/v1/auth/token/", {"email": "tech@alpha.test", "password": PASSWORD}, format="json")
    assert response.status_code == 201
    token, expires = response.json()["token"], response.json()["expires"]
    assert expires
    stored = AuthToken.objects.get(user=tenant_a.members["tech"].user)
    assert token not in (stored.digest, stored.token_key) and len(stored.digest) == 128
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/tenants/alpha/settings/").status_code == 200
    # Expired: refused.
    stored.expiry = timezone.now() - timedelta(seconds=1)  # knox writes expiry with save(), as here
    stored.save(update_fields=["expiry"])
    expired = api.get("/api/v1/tenants/alpha/settings/")
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "authentication_failed"
    # Revoked: refused.
    response = api.post("/api/v1/auth/token/", {"email": "tech@alpha.test", "password": PASSWORD}, format="json")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    assert api.delete("/api/v1/auth/token/").status_code == 204
    assert api.get("/api/v1/tenants/alpha/settings/").status_code == 401


def test_token_login_with_bad_credentials(tenant_a):
    api = APIClient()
    bad = api.post("/api/v1/auth/token/", {"email": "tech@alpha.test", "password": "nope"}, format="json")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_credentials"
    malformed = api.post("/api/v1/auth/token/", {"email": "not-an-email"}, format="json")
    assert malformed.status_code == 400 and set(malformed.json()["error"]["fields"]) == {"email", "password"}


def test_suspending_a_tenant_ends_sessions_and_tokens(tenant_a, tenant_b, operator, django_capture_on_commit_callbacks):
    browser = Client()
    login(browser, "tech@alpha.test")
    api = api_client_for(tenant_a.members["admin"].user)
    bystander = api_client_for(tenant_b.members["admin"].user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(operator).patch(
            reverse("api:platform-tenants-detail", kwargs={"pk": tenant_a.tenant.pk}), {"status": "suspended"}, format="json"
        )
    assert response.status_code == 200 and response.json()["status"] == "suspended"
    assert browser.get("/t/alpha/").status_code == 302  # session gone
    assert api.get("/api/v1/tenants/alpha/settings/").status_code == 401  # token gone
    assert bystander.get("/api/v1/tenants/bravo/settings/").status_code == 200
    from copilot_admin.audit.models import AuditEntry

    ended = AuditEntry.objects.for_tenant(tenant_a.tenant).get(action="tenant.sessions_ended")
    assert ended.metadata["sessions"] >= 1 and ended.metadata["tokens"] >= 1
    # Logging in again does not reopen a suspended tenant.
    again = api_client_for(tenant_a.members["admin"].user)
    refused = again.get("/api/v1/tenants/alpha/settings/")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "tenant_suspended"
    page = Client()
    page.force_login(tenant_a.members["tech"].user)
    assert page.get("/t/alpha/").status_code == 403


def test_reactivating_a_tenant_restores_access(tenant_a, operator):
    platform_services.tenant_update(actor=operator, tenant=tenant_a.tenant, status=TenantStatus.SUSPENDED)
    platform_services.tenant_update(actor=operator, tenant=tenant_a.tenant, status=TenantStatus.ACTIVE)
    assert api_client_for(tenant_a.members["tech"].user).get("/api/v1/tenants/alpha/settings/").status_code == 200


def test_only_operators_change_tenants(tenant_a):
    with pytest.raises(Exception):
        platform_services.tenant_update(actor=tenant_a.members["admin"].user, tenant=tenant_a.tenant, plan="essentials")

"""MFA: TOTP enrolment and login (wrong and replayed codes), recovery codes (hashed, single use),
re-authentication before changing factors, forced enrolment (`mfa_required`, operators in
production), `otp` on `POST auth/token/`, the second-factor throttle, and the audit trail."""

import hashlib
import json
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.test import AsyncClient, Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from copilot_admin.audit.models import AuditEntry
from copilot_admin.identity import mfa
from copilot_admin.identity.mfa_views import PENDING_KEY, REAUTH_KEY
from copilot_admin.identity.models import MfaRecoveryCode, MfaSecurityKey
from tests.factories import PASSWORD
from tests.identity.helpers import SoftAuthenticator, password_login, totp_clock, totp_code

TOKEN = "/api/v1/auth/token/"
EMAIL = "admin@alpha.test"


@pytest.fixture
def clock():
    with totp_clock() as clock:
        yield clock


def audit_actions(tenant, prefix="identity.") -> list[str]:
    return list(
        AuditEntry.objects.for_chain(tenant)
        .filter(action__startswith=prefix)
        .order_by("pk")
        .values_list("action", flat=True)
    )


def enrol_totp(client, clock) -> tuple[TOTPDevice, list[str], str]:
    """Enrol an authenticator through the pages (the client just logged in: recent password)."""
    page = client.get("/account/mfa/totp/")
    assert page.status_code == 200
    assert "<svg" in page.content.decode()
    device = TOTPDevice.objects.get(user__email=EMAIL, confirmed=False)
    assert mfa.mfa_totp_secret_b32(device) in page.content.decode()
    code = totp_code(device, clock.now)
    response = client.post("/account/mfa/totp/", {"name": "Phone", "code": code})
    assert response.status_code == 200
    codes = list(response.context["codes"])
    device.refresh_from_db()
    assert device.confirmed
    return device, codes, code


def logged_in_with_totp(tenant_a, clock):
    client = Client()
    assert password_login(client, EMAIL).status_code == 302
    device, codes, first_code = enrol_totp(client, clock)
    client.post("/logout/")
    return device, codes, first_code


def test_totp_enrolment_confirms_with_the_first_code_and_shows_recovery_codes_once(tenant_a, clock):
    client = Client()
    password_login(client, EMAIL)
    client.get("/account/mfa/totp/")
    wrong = client.post("/account/mfa/totp/", {"name": "Phone", "code": "000000"})
    assert wrong.status_code == 400
    assert not mfa.mfa_has_factor(user=tenant_a.members["admin"].user)

    device = TOTPDevice.objects.get(user__email=EMAIL)
    response = client.post("/account/mfa/totp/", {"name": "Phone", "code": totp_code(device, clock.now)})
    assert response.status_code == 200
    codes = response.context["codes"]
    assert len(codes) == mfa.RECOVERY_CODE_COUNT and len(set(codes)) == len(codes)
    assert mfa.mfa_has_factor(user=tenant_a.members["admin"].user)
    # Shown on that answer only: the management page lists how many are left, never the codes.
    page = client.get("/account/mfa/").content.decode()
    assert all(code not in page for code in codes) and "10 unused" in page
    assert audit_actions(tenant_a.tenant) == ["identity.mfa_enrolled", "identity.mfa_recovery_codes_issued"]


def test_recovery_codes_are_stored_hashed(tenant_a, clock):
    _device, codes, _ = logged_in_with_totp(tenant_a, clock)
    stored = list(MfaRecoveryCode.objects.filter(user__email=EMAIL).values_list("code_hash", flat=True))
    assert len(stored) == len(codes)
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored
    assert sorted(stored) == sorted(mfa._recovery_hash(code) for code in codes)
    assert all(len(h) == len(hashlib.sha256().hexdigest()) for h in stored)


def test_no_secret_reaches_the_audit_log(tenant_a, clock):
    device, codes, first_code = logged_in_with_totp(tenant_a, clock)
    dump = json.dumps(
        list(AuditEntry.objects.for_chain(tenant_a.tenant).values("changes", "metadata", "object_repr", "object_id")),
        default=str,
    )
    for secret in [device.key, mfa.mfa_totp_secret_b32(device), first_code, *codes]:
        assert secret not in dump


def test_login_with_a_factor_is_not_authenticated_before_the_second_step(tenant_a, clock):
    device, _codes, first_code = logged_in_with_totp(tenant_a, clock)
    client = Client()
    response = password_login(client, EMAIL)
    assert response.status_code == 302 and response["Location"] == "/login/mfa/"
    assert "_auth_user_id" not in client.session
    assert client.get("/t/alpha/").status_code == 302  # not logged in
    assert client.get("/api/v1/tenants/alpha/users/").status_code in (401, 403)

    wrong = client.post("/login/mfa/", {"code": "123456" if first_code != "123456" else "654321"})
    assert wrong.status_code == 401 and "_auth_user_id" not in client.session
    replayed = client.post("/login/mfa/", {"code": first_code})  # the code that confirmed the enrolment
    assert replayed.status_code == 401 and "_auth_user_id" not in client.session
    assert audit_actions(tenant_a.tenant).count("identity.mfa_failed") == 2

    clock.advance(30)
    ok = client.post("/login/mfa/", {"code": totp_code(device, clock.now)})
    assert ok.status_code == 302
    assert client.get("/t/alpha/").status_code == 200
    # The accepted code cannot log in a second time.
    other = Client()
    password_login(other, EMAIL)
    assert other.post("/login/mfa/", {"code": totp_code(device, clock.now)}).status_code == 401


def test_the_second_step_needs_a_fresh_password_step(tenant_a, clock, settings):
    device, _codes, _ = logged_in_with_totp(tenant_a, clock)
    client = Client()
    assert client.get("/login/mfa/")["Location"] == "/login/"  # no password step: back to the login
    password_login(client, EMAIL)
    session = client.session
    session[PENDING_KEY] = {**session[PENDING_KEY], "at": session[PENDING_KEY]["at"] - settings.MFA_PENDING_SECONDS - 1}
    session.save()
    clock.advance(30)
    response = client.post("/login/mfa/", {"code": totp_code(device, clock.now)})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


def test_recovery_code_logs_in_once(tenant_a, clock):
    _device, codes, _ = logged_in_with_totp(tenant_a, clock)
    client = Client()
    password_login(client, EMAIL)
    assert client.post("/login/mfa/", {"code": codes[0].upper()}).status_code == 302
    assert client.get("/t/alpha/").status_code == 200
    again = Client()
    password_login(again, EMAIL)
    assert again.post("/login/mfa/", {"code": codes[0]}).status_code == 401
    assert mfa.mfa_recovery_codes_left(user=tenant_a.members["admin"].user) == len(codes) - 1
    actions = audit_actions(tenant_a.tenant)
    assert actions.count("identity.mfa_recovery_code_used") == 1 and actions[-1] == "identity.mfa_failed"


def test_changing_factors_needs_a_recent_password(tenant_a, clock, settings):
    client = Client()
    password_login(client, EMAIL)
    session = client.session
    session[REAUTH_KEY] -= settings.MFA_REAUTH_SECONDS + 1
    session.save()
    for method, url in [
        ("get", "/account/mfa/totp/"),
        ("post", "/account/mfa/remove/"),
        ("post", "/account/mfa/recovery-codes/"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/account/mfa/reauth/"), url
    refused = client.post("/account/mfa/security-key/options/", content_type="application/json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "reauthentication_required"
    assert not TOTPDevice.objects.filter(user__email=EMAIL).exists()

    wrong = client.post("/account/mfa/reauth/", {"password": "wrong", "next": "/account/mfa/totp/"})
    assert wrong.status_code == 400
    assert audit_actions(tenant_a.tenant) == ["identity.mfa_reauth_failed"]
    right = client.post("/account/mfa/reauth/", {"password": PASSWORD, "next": "/account/mfa/totp/"})
    assert right.status_code == 302 and right["Location"] == "/account/mfa/totp/"
    assert client.get("/account/mfa/totp/").status_code == 200


def test_removing_a_factor_is_audited_and_drops_recovery_codes(tenant_a, clock):
    client = Client()
    password_login(client, EMAIL)
    device, _codes, _ = enrol_totp(client, clock)
    response = client.post("/account/mfa/remove/", {"factor": "totp", "id": device.pk})
    assert response.status_code == 302
    assert not mfa.mfa_has_factor(user=tenant_a.members["admin"].user)
    assert not MfaRecoveryCode.objects.filter(user__email=EMAIL).exists()
    assert audit_actions(tenant_a.tenant)[-1] == "identity.mfa_removed"
    # Another user's factor is not found.
    other = TOTPDevice.objects.create(user=tenant_a.members["tech"].user, name="x", confirmed=True)
    client.post("/account/mfa/remove/", {"factor": "totp", "id": other.pk})
    assert TOTPDevice.objects.filter(pk=other.pk).exists()


def test_the_last_factor_stays_while_mfa_is_required(tenant_a, clock):
    client = Client()
    password_login(client, EMAIL)
    device, _codes, _ = enrol_totp(client, clock)
    mfa.mfa_tenant_required_set(actor=tenant_a.members["admin"], mfa_required=True)
    client.post("/account/mfa/remove/", {"factor": "totp", "id": device.pk})
    assert TOTPDevice.objects.filter(pk=device.pk, confirmed=True).exists()
    assert "identity.mfa_removed" not in audit_actions(tenant_a.tenant)


# -- mfa_required ------------------------------------------------------------------------------


def test_settings_api_reads_and_sets_mfa_required(tenant_a, api_for):
    admin = api_for(tenant_a.members["admin"].user)
    assert admin.get("/api/v1/tenants/alpha/settings/").json()["mfa_required"] is False
    response = admin.patch("/api/v1/tenants/alpha/settings/", {"mfa_required": True}, format="json")
    assert response.status_code == 200 and response.json()["mfa_required"] is True
    assert mfa.mfa_tenant_required(tenant=tenant_a.tenant)
    entry = AuditEntry.objects.for_chain(tenant_a.tenant).get(action="identity.mfa_policy_update")
    assert entry.changes["mfa_required"] == ["False", "True"] or entry.changes["mfa_required"] == [False, True]
    tech = api_for(tenant_a.members["tech"].user)
    assert tech.patch("/api/v1/tenants/alpha/settings/", {"mfa_required": False}, format="json").status_code == 403
    assert mfa.mfa_tenant_required(tenant=tenant_a.tenant)


def test_settings_page_sets_mfa_required(tenant_a):
    client = Client()
    client.force_login(tenant_a.members["admin"].user)
    response = client.post("/t/alpha/settings/", {"copilot_enabled": "on", "mfa_required": "on"})
    assert response.status_code == 302
    assert mfa.mfa_tenant_required(tenant=tenant_a.tenant)


def test_mfa_required_forces_admins_and_auditors_to_enrol_first(tenant_a, tenant_b, clock):
    mfa.mfa_tenant_required_set(actor=tenant_a.members["admin"], mfa_required=True)
    for key in ("admin", "auditor"):
        assert mfa.mfa_enrolment_missing(user=tenant_a.members[key].user), key
    for key in ("tech", "comanaged"):
        assert not mfa.mfa_enrolment_missing(user=tenant_a.members[key].user), key
    # Another tenant's policy binds nobody here.
    assert not mfa.mfa_enrolment_missing(user=tenant_b.members["admin"].user)

    client = Client()
    response = password_login(client, "auditor@alpha.test")
    assert response.status_code == 302 and response["Location"] == "/account/mfa/"
    for url in ("/", "/t/alpha/", "/t/alpha/audit/", "/account/"):
        blocked = client.get(url)
        assert blocked.status_code == 302 and blocked["Location"] == "/account/mfa/", url
    api = client.get("/api/v1/tenants/alpha/audit/")
    assert api.status_code == 403 and api.json()["error"]["code"] == "mfa_enrolment_required"
    assert client.get("/account/mfa/").status_code == 200

    # Enrolment lifts the block.
    client.get("/account/mfa/totp/")
    device = TOTPDevice.objects.get(user__email="auditor@alpha.test")
    assert client.post("/account/mfa/totp/", {"code": totp_code(device, clock.now)}).status_code == 200
    assert client.get("/t/alpha/audit/").status_code == 200

    # A technician logs in as before.
    tech = Client()
    assert password_login(tech, "tech@alpha.test")["Location"] != "/account/mfa/"
    assert tech.get("/t/alpha/").status_code == 200


def test_operators_must_enrol_in_production_only(operator, settings):
    settings.PRODUCTION = False
    assert not mfa.mfa_enrolment_missing(user=operator)
    settings.PRODUCTION = True
    assert mfa.mfa_enrolment_missing(user=operator)
    client = Client()
    assert password_login(client, operator.email)["Location"] == "/account/mfa/"
    assert client.get("/platform/tenants/")["Location"] == "/account/mfa/"


# -- auth/token ----------------------------------------------------------------------------------


def token(otp=None, email=EMAIL, ip="10.0.0.1"):
    body = {"email": email, "password": PASSWORD, **({"otp": otp} if otp is not None else {})}
    return APIClient().post(TOKEN, body, format="json", REMOTE_ADDR=ip)


def test_token_needs_otp_for_a_user_with_mfa(tenant_a, clock):
    device, codes, first_code = logged_in_with_totp(tenant_a, clock)
    missing = token()
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "mfa_required"
    wrong = token("000000" if first_code != "000000" else "111111")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_otp"
    replayed = token(first_code)
    assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "invalid_otp"
    clock.advance(30)
    ok = token(totp_code(device, clock.now))
    assert ok.status_code == 201 and ok.json()["token"]
    assert token(codes[1]).status_code == 201  # a recovery code, once
    assert token(codes[1]).json()["error"]["code"] == "invalid_otp"
    # A wrong password is still invalid_credentials, whatever otp says.
    bad = APIClient().post(TOKEN, {"email": EMAIL, "password": "nope", "otp": "123456"}, format="json")
    assert bad.json()["error"]["code"] == "invalid_credentials"
    # Users without MFA are unaffected.
    assert token(email="tech@alpha.test").status_code == 201


def test_token_for_a_user_that_must_enrol_is_refused_until_it_does(tenant_a):
    mfa.mfa_tenant_required_set(actor=tenant_a.members["admin"], mfa_required=True)
    response = token()
    assert response.status_code == 401 and response.json()["error"]["code"] == "mfa_required"


def test_failed_second_factors_are_throttled(tenant_a, clock):
    device, _codes, first_code = logged_in_with_totp(tenant_a, clock)
    now = [1_950_000_000.0]
    with mock.patch("copilot_admin.identity.mfa._now", lambda: now[0]):
        wrong = "000000" if first_code != "000000" else "111111"
        for _ in range(settings.MFA_FAILURE_LIMIT):
            assert token(wrong).json()["error"]["code"] == "invalid_otp"
        clock.advance(30)
        good = totp_code(device, clock.now)
        throttled = token(good)
        assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "login_throttled"
        assert 0 < int(throttled["Retry-After"]) <= settings.MFA_FAILURE_WINDOW_SECONDS
        page = Client()
        password_login(page, EMAIL)
        assert page.post("/login/mfa/", {"code": good}).status_code == 429
        assert "_auth_user_id" not in page.session
        now[0] += settings.MFA_FAILURE_WINDOW_SECONDS + 1
        assert token(good).status_code == 201
    assert audit_actions(tenant_a.tenant).count("identity.mfa_failed") == settings.MFA_FAILURE_LIMIT


# -- security keys (WebAuthn) -----------------------------------------------------------------


def register_key(client, authenticator, name="YubiKey"):
    options = client.post("/account/mfa/security-key/options/", content_type="application/json").json()
    return client.post(
        "/account/mfa/security-key/",
        {"name": name, "credential": authenticator.create(options)},
        content_type="application/json",
    )


def test_security_key_registration_and_login(tenant_a):
    authenticator = SoftAuthenticator()
    client = Client()
    password_login(client, EMAIL)
    response = register_key(client, authenticator)
    assert response.status_code == 201, response.content
    assert len(response.json()["recovery_codes"]) == mfa.RECOVERY_CODE_COUNT
    key = MfaSecurityKey.objects.get(user__email=EMAIL)
    assert bytes(key.credential_id) == authenticator.credential_id
    assert "identity.mfa_enrolled" in audit_actions(tenant_a.tenant)
    client.post("/logout/")

    login = Client()
    assert password_login(login, EMAIL)["Location"] == "/login/mfa/"
    assert "Use your security key" in login.get("/login/mfa/").content.decode()
    options = login.post("/login/mfa/security-key/options/", content_type="application/json").json()
    assert [c["id"] for c in options["allowCredentials"]] == [key.credential_id_b64]
    assertion = authenticator.get(options)
    response = login.post("/login/mfa/security-key/verify/", assertion, content_type="application/json")
    assert response.status_code == 200 and response.json()["redirect"]
    assert login.get("/t/alpha/").status_code == 200
    key.refresh_from_db()
    assert key.sign_count == 1 and key.last_used_at is not None

    # The same assertion again (its challenge is spent) does not log anyone in.
    again = Client()
    password_login(again, EMAIL)
    replay = again.post("/login/mfa/security-key/verify/", assertion, content_type="application/json")
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "invalid_otp"
    assert "_auth_user_id" not in again.session


def test_security_key_assertions_from_a_wrong_key_or_origin_are_refused_and_audited(tenant_a):
    authenticator = SoftAuthenticator()
    client = Client()
    password_login(client, EMAIL)
    assert register_key(client, authenticator).status_code == 201
    for kwargs in ({"signing_key": ec.generate_private_key(ec.SECP256R1())}, {"origin": "https://evil.example"}):
        login = Client()
        password_login(login, EMAIL)
        options = login.post("/login/mfa/security-key/options/", content_type="application/json").json()
        response = login.post(
            "/login/mfa/security-key/verify/", authenticator.get(options, **kwargs), content_type="application/json"
        )
        assert response.status_code == 401 and "_auth_user_id" not in login.session
    assert audit_actions(tenant_a.tenant).count("identity.mfa_failed") == 2


def test_security_key_registration_with_a_wrong_challenge_is_refused(tenant_a):
    authenticator = SoftAuthenticator()
    client = Client()
    password_login(client, EMAIL)
    client.post("/account/mfa/security-key/options/", content_type="application/json")
    forged = authenticator.create({"challenge": "AAAAAAAAAAAAAAAAAAAAAA"})
    response = client.post("/account/mfa/security-key/", {"credential": forged}, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_security_key"
    assert not MfaSecurityKey.objects.exists()


def test_forced_enrolment_holds_under_asgi_too(tenant_a, settings):
    """The middleware's async path (ASGI, where the copilot's async views run) blocks the same way."""
    mfa.mfa_tenant_required_set(actor=tenant_a.members["admin"], mfa_required=True)
    client = Client()
    password_login(client, EMAIL)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    async_client = AsyncClient()
    async_client.cookies[settings.SESSION_COOKIE_NAME] = cookie
    response = async_to_sync(async_client.get)("/api/v1/tenants/alpha/users/")
    assert response.status_code == 403 and response.json()["error"]["code"] == "mfa_enrolment_required"
    page = async_to_sync(async_client.get)("/t/alpha/")
    assert page.status_code == 302 and page["Location"] == "/account/mfa/"
    # Token clients (no session cookie) are not held: they are refused at the token instead.
    assert token().json()["error"]["code"] == "mfa_required"


def test_operator_token_needs_mfa_in_production(operator, settings):
    settings.PRODUCTION = True
    response = token(email=operator.email)
    assert response.status_code == 401 and response.json()["error"]["code"] == "mfa_required"
    settings.PRODUCTION = False
    assert token(email=operator.email).status_code == 201


def test_second_step_goes_where_the_login_was_headed(tenant_a, clock):
    device, _codes, _ = logged_in_with_totp(tenant_a, clock)
    client = Client()
    client.post(
        "/login/?next=/t/alpha/companies/", {"username": EMAIL, "password": PASSWORD, "next": "/t/alpha/companies/"}
    )
    clock.advance(30)
    response = client.post("/login/mfa/", {"code": totp_code(device, clock.now)})
    assert response.status_code == 302 and response["Location"] == "/t/alpha/companies/"
    evil = Client()
    evil.post("/login/", {"username": EMAIL, "password": PASSWORD, "next": "https://evil.example/"})
    clock.advance(30)
    response = evil.post("/login/mfa/", {"code": totp_code(device, clock.now)})
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.parametrize(
    "garbage",
    [{}, "x", 7, [], {"id": 1}, {"rawId": "AAAA", "response": {}}, {"rawId": "AAAA", "response": "x", "type": 3}],
)
def test_malformed_webauthn_answers_are_refused_not_500(tenant_a, garbage):
    authenticator = SoftAuthenticator()
    client = Client()
    password_login(client, EMAIL)
    client.post("/account/mfa/security-key/options/", content_type="application/json")
    response = client.post("/account/mfa/security-key/", {"credential": garbage}, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_security_key"
    assert register_key(client, authenticator).status_code == 201
    login = Client()
    password_login(login, EMAIL)
    login.post("/login/mfa/security-key/options/", content_type="application/json")
    key_id = MfaSecurityKey.objects.get(user__email=EMAIL).credential_id_b64
    body = {**garbage, "rawId": key_id} if isinstance(garbage, dict) else garbage
    response = login.post("/login/mfa/security-key/verify/", body, content_type="application/json")
    assert response.status_code in (400, 401) and "_auth_user_id" not in login.session
    assert (
        login.post("/login/mfa/security-key/verify/", "{not json", content_type="application/json").status_code == 400
    )

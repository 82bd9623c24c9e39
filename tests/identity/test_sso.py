"""Single sign-on end to end against a real OpenID Connect provider on loopback (oidc-provider):
configuration and the operator's approval, sign-in, and every refusal the contract names."""

from __future__ import annotations

import importlib
import time

import pytest
from django.apps import apps
from django.contrib.auth import SESSION_KEY
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from copilot_admin.access.permissions import Perm
from copilot_admin.core.errors import ApplicationError
from copilot_admin.identity import oidc
from copilot_admin.identity.models import SsoConfiguration, SsoDomain, SsoDomainStatus
from copilot_admin.identity.sso_selectors import sso_configuration_for_email
from copilot_admin.identity.sso_services import sso_configuration_update
from tenants.models import Membership, User
from tests.audit.conftest import entries
from tests.conftest import api_client_for
from tests.factories import PASSWORD, add_member
from tests.identity.conftest import CLIENT_ID, SECRET_ENV, authorize, configure_sso, sign_in
from tests.identity.helpers import totp_clock, totp_code

pytestmark = [pytest.mark.django_db, pytest.mark.services]


def signed_in_as(client) -> User | None:
    pk = client.session.get(SESSION_KEY)
    return User.objects.filter(pk=pk).first() if pk else None


def refusals(world) -> list[str]:
    return [e.metadata.get("reason") for e in entries(world, action="sso.login", outcome="denied")]


# -- configuration -------------------------------------------------------------------------------


def test_admin_configures_sso_by_api_and_it_takes_effect_only_once_the_operator_approves(
    tenant_a, operator, oidc_provider
):
    admin_api = api_client_for(tenant_a.members["admin"].user)
    response = admin_api.patch(
        "/api/v1/tenants/alpha/sso/",
        {
            "enabled": True,
            "issuer": oidc_provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret_env": SECRET_ENV,
            "email_domains": ["Alpha.test", "@alpha-corp.test"],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["email_domains"] == ["alpha-corp.test", "alpha.test"]
    assert {d["status"] for d in body["domains"]} == {"pending"}
    assert body["callback_url"] == "http://testserver/login/sso/callback/"
    assert "secret" not in str(body).replace("client_secret_env", "")
    # Pending: the login page offers no SSO and password login still works for the domain.
    assert sso_configuration_for_email("admin@alpha.test") is None

    claim = SsoDomain.objects.for_tenant(tenant_a.tenant).get(domain="alpha.test")
    operator_api = api_client_for(operator)
    listed = operator_api.get("/api/v1/platform/sso-domains/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert {(row["tenant"], row["domain"], row["status"]) for row in rows} >= {("alpha", "alpha.test", "pending")}
    approved = operator_api.post(f"/api/v1/platform/sso-domains/{claim.pk}/approve/")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert sso_configuration_for_email("someone@ALPHA.test").tenant == tenant_a.tenant
    assert sso_configuration_for_email("someone@alpha-corp.test") is None  # still pending

    # A tenant administrator cannot approve its own claim (the platform API does not exist for it).
    assert admin_api.post(f"/api/v1/platform/sso-domains/{claim.pk}/approve/").status_code == 404
    actions = [e.action for e in entries(tenant_a)]
    assert "sso.create" in actions and "sso_domain.create" in actions and "sso_domain.update" in actions


def test_the_client_secret_is_only_ever_a_named_oidc_variable(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    for name in (
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "AZURE_OPENAI_KEY_EU",
        "OIDC_CLIENT_SECRET_",
        "oidc_client_secret_x",
    ):
        response = api.patch("/api/v1/tenants/alpha/sso/", {"client_secret_env": name}, format="json")
        assert response.status_code == 400, name
        assert response.json()["error"]["fields"]["client_secret_env"]
    assert (
        api.patch(
            "/api/v1/tenants/alpha/sso/", {"client_secret_env": "OIDC_CLIENT_SECRET_ALPHA"}, format="json"
        ).status_code
        == 200
    )


def test_only_identity_administrators_configure_sso(tenant_a, tenant_b):
    assert Perm.IDENTITY in tenant_a.members["admin"].role.permission_set
    for key in ("tech", "auditor", "comanaged"):
        api = api_client_for(tenant_a.members[key].user)
        assert api.get("/api/v1/tenants/alpha/sso/").status_code == 403
        assert api.patch("/api/v1/tenants/alpha/sso/", {"enabled": False}, format="json").status_code == 403
    # Another tenant's administrator: the tenant does not exist for them.
    assert api_client_for(tenant_b.members["admin"].user).get("/api/v1/tenants/alpha/sso/").status_code == 404


def test_two_tenants_can_never_claim_one_domain(tenant_a, tenant_b):
    sso_configuration_update(actor=tenant_a.members["admin"], email_domains=["shared.test"])
    with pytest.raises(ApplicationError) as refused:
        sso_configuration_update(actor=tenant_b.members["admin"], email_domains=["shared.test"])
    assert refused.value.code == "domain_taken"
    response = api_client_for(tenant_b.members["admin"].user).patch(
        "/api/v1/tenants/bravo/sso/", {"email_domains": ["SHARED.test"]}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "domain_taken"
    # The database refuses it too (a write that skipped the check, or a concurrent one).
    with pytest.raises(IntegrityError), transaction.atomic():
        SsoDomain.objects.for_tenant(tenant_b.tenant).create(tenant=tenant_b.tenant, domain="shared.test")


def test_enforcing_needs_enabled_and_the_break_glass_account_must_be_an_identity_administrator(tenant_a):
    admin = tenant_a.members["admin"]
    with pytest.raises(ApplicationError):
        sso_configuration_update(actor=admin, enforced=True)
    with pytest.raises(ApplicationError) as refused:
        sso_configuration_update(actor=admin, break_glass_email="tech@alpha.test")
    assert "break_glass_email" in refused.value.fields
    # An administrator without a second factor cannot be the break-glass account.
    with pytest.raises(ApplicationError) as refused:
        sso_configuration_update(actor=admin, break_glass_email="admin@alpha.test")
    assert "second factor" in refused.value.message
    TOTPDevice.objects.create(user=admin.user, name="Phone", confirmed=True)
    sso_configuration_update(actor=admin, break_glass_email="admin@alpha.test")
    assert SsoConfiguration.objects.for_tenant(tenant_a.tenant).get().break_glass == admin


# -- sign-in -------------------------------------------------------------------------------------


def test_sign_in_with_the_provider(tenant_a, operator, oidc_provider, sso_secret):
    configure_sso(tenant_a, oidc_provider, operator)
    client = Client()
    step = client.post("/login/", {"step": "email", "email": "tech@alpha.test"})
    assert b"Sign in with Microsoft" in step.content
    # The form's navigation continues at the provider: the page's CSP form-action admits its origin.
    assert oidc_provider.issuer in step["Content-Security-Policy"]
    _, response = sign_in(client, "tech@alpha.test", next_url="/t/alpha/")
    assert response.status_code == 302 and response["Location"] == "/t/alpha/"
    assert signed_in_as(client) == tenant_a.members["tech"].user
    assert client.get("/t/alpha/").status_code == 200
    [entry] = entries(tenant_a, action="sso.login", outcome="success")
    assert entry.actor_email == "tech@alpha.test" and entry.metadata["issuer"] == oidc_provider.issuer


def test_a_domain_without_sso_gets_no_offer(tenant_a):
    step = Client().post("/login/", {"step": "email", "email": "tech@alpha.test"})
    assert step.status_code == 200 and b"Sign in with Microsoft" not in step.content and b"Password" in step.content


def test_a_replayed_state_is_refused(tenant_a, operator, oidc_provider, sso_secret):
    configure_sso(tenant_a, oidc_provider, operator)
    client = Client()
    callback, response = sign_in(client, "tech@alpha.test")
    assert response.status_code == 302
    client.logout()
    again = client.get(callback)
    assert again.status_code == 400 and signed_in_as(client) is None
    # Another browser replaying a callback it captured: no flow in its session either.
    stranger = Client()
    assert stranger.get(callback).status_code == 400 and signed_in_as(stranger) is None


def test_a_callback_for_another_browsers_state_is_refused(tenant_a, operator, oidc_provider, sso_secret):
    configure_sso(tenant_a, oidc_provider, operator)
    victim, attacker = Client(), Client()
    start = attacker.post("/login/sso/", {"email": "tech@alpha.test"})
    callback = authorize(start["Location"])
    victim.post("/login/sso/", {"email": "admin@alpha.test"})  # the victim has a flow of its own
    assert victim.get(callback).status_code == 400 and signed_in_as(victim) is None


def test_a_provider_announcing_another_issuer_is_refused(tenant_a, operator, oidc_provider, sso_secret):
    # The same provider reached under another name: its discovery document names 127.0.0.1.
    configure_sso(tenant_a, oidc_provider, operator, issuer=f"http://localhost:{oidc_provider.port}")
    response = Client().post("/login/sso/", {"email": "tech@alpha.test"})
    assert response.status_code == 502 and b"different issuer" in response.content
    assert refusals(tenant_a) == ["wrong_issuer"]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({"iss": "https://login.microsoftonline.com/evil/v2.0"}, "wrong_issuer"),
        ({"aud": "another-client"}, "wrong_audience"),
        ({"exp_offset": "-300"}, "expired"),
        ({"foreign_key": "1"}, "bad_signature"),
    ],
    ids=["wrong-issuer", "wrong-audience", "expired", "unknown-signing-key"],
)
def test_an_id_token_that_fails_a_check_is_refused(tamper, reason, tenant_a, operator, oidc_provider, sso_secret):
    configure_sso(tenant_a, oidc_provider, operator)
    client = Client()
    oidc_provider.tamper(**tamper)
    _, response = sign_in(client, "tech@alpha.test")
    assert response.status_code == 403 and signed_in_as(client) is None
    assert refusals(tenant_a) == [reason]


def test_an_id_token_is_refused_once_expired_by_the_portals_clock(
    tenant_a, operator, oidc_provider, sso_secret, monkeypatch
):
    configure_sso(tenant_a, oidc_provider, operator)
    monkeypatch.setattr(oidc, "_now", lambda: time.time() + 2 * 3600)  # the provider's ID tokens last an hour
    client = Client()
    _, response = sign_in(client, "tech@alpha.test")
    assert response.status_code == 403 and signed_in_as(client) is None
    assert refusals(tenant_a) == ["expired"]


def test_an_unverified_email_is_refused(tenant_a, operator, oidc_provider, sso_secret):
    configure_sso(tenant_a, oidc_provider, operator)
    add_member(tenant_a.tenant, "Technician", email="unverified.tech@alpha.test")
    client = Client()
    _, response = sign_in(client, "unverified.tech@alpha.test")
    assert response.status_code == 403 and signed_in_as(client) is None
    assert b"not verified" in response.content
    assert refusals(tenant_a) == ["email_unverified"]


def test_an_address_of_another_tenants_domain_is_refused(tenant_a, tenant_b, operator, oidc_provider, sso_secret):
    configure_sso(tenant_a, oidc_provider, operator)
    configure_sso(tenant_b, oidc_provider, operator)
    client = Client()
    # Alpha's provider vouches for a bravo.test address (e.g. a guest account): not alpha's to sign in.
    _, response = sign_in(client, "admin@alpha.test", login_hint="admin@bravo.test")
    assert response.status_code == 403 and signed_in_as(client) is None
    assert refusals(tenant_a) == ["domain_mismatch"]


def test_a_member_of_another_tenant_with_the_domains_address_is_refused(
    tenant_a, tenant_b, operator, oidc_provider, sso_secret
):
    configure_sso(tenant_a, oidc_provider, operator)
    add_member(tenant_b.tenant, "Tenant Administrator", email="outsider@alpha.test")
    client = Client()
    _, response = sign_in(client, "outsider@alpha.test")
    assert response.status_code == 403 and signed_in_as(client) is None
    assert refusals(tenant_a) == ["unknown_user"]


def test_an_unknown_user_is_refused_without_jit(tenant_a, operator, oidc_provider, sso_secret):
    configure_sso(tenant_a, oidc_provider, operator)
    client = Client()
    _, response = sign_in(client, "newcomer@alpha.test")
    assert response.status_code == 403 and signed_in_as(client) is None
    assert not User.objects.filter(email="newcomer@alpha.test").exists()
    assert refusals(tenant_a) == ["unknown_user"]


def test_jit_creates_only_a_pending_membership_with_the_lowest_role(tenant_a, operator, oidc_provider, sso_secret):
    configure_sso(tenant_a, oidc_provider, operator, jit_enabled=True)
    client = Client()
    _, response = sign_in(client, "newcomer@alpha.test")
    assert response.status_code == 403 and signed_in_as(client) is None
    membership = Membership.objects.for_tenant(tenant_a.tenant).get(user__email="newcomer@alpha.test")
    assert not membership.is_active and membership.role.name == "Technician"  # no admin, usage or audit permission
    assert not membership.user.has_usable_password()
    _, again = sign_in(client, "newcomer@alpha.test")
    assert again.status_code == 403 and signed_in_as(client) is None
    assert refusals(tenant_a) == ["pending_approval", "inactive"]
    assert [e.action for e in entries(tenant_a, action="membership.sso_jit_create")]


def test_an_inactive_member_is_refused(tenant_a, operator, oidc_provider, sso_secret):
    configure_sso(tenant_a, oidc_provider, operator)
    membership = tenant_a.members["tech"]
    membership.is_active = False
    membership.save()
    client = Client()
    _, response = sign_in(client, "tech@alpha.test")
    assert response.status_code == 403 and signed_in_as(client) is None


def test_a_missing_client_secret_refuses_the_sign_in(tenant_a, operator, oidc_provider, monkeypatch):
    configure_sso(tenant_a, oidc_provider, operator)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    client = Client()
    _, response = sign_in(client, "tech@alpha.test")
    assert response.status_code == 503 and signed_in_as(client) is None
    assert refusals(tenant_a) == ["secret_missing"]


# -- enforcement ---------------------------------------------------------------------------------


def test_enforced_sso_refuses_password_login_on_the_page_and_the_token_api(tenant_a, operator, oidc_provider):
    configure_sso(tenant_a, oidc_provider, operator, enforced=True)
    page = Client().post("/login/", {"username": "tech@alpha.test", "password": PASSWORD})
    assert page.status_code == 403 and b"single sign-on" in page.content and b"Sign in with Microsoft" in page.content
    token = api_client_for(None).post(
        "/api/v1/auth/token/", {"email": "Tech@Alpha.test", "password": PASSWORD}, format="json"
    )
    assert token.status_code == 403 and token.json()["error"]["code"] == "sso_required"
    # Refused before the password is checked: no failed login is counted against the account.
    assert not entries(tenant_a, action="auth.login_failed").exists()


def test_password_login_still_works_while_sso_is_not_enforced_or_the_domain_not_approved(
    tenant_a, operator, oidc_provider
):
    configure_sso(tenant_a, oidc_provider, operator, enforced=False)
    assert Client().post("/login/", {"username": "tech@alpha.test", "password": PASSWORD}).status_code == 302
    sso_configuration_update(actor=tenant_a.members["admin"], enforced=True, email_domains=["alpha.test", "new.test"])
    add_member(tenant_a.tenant, "Technician", email="someone@new.test")
    assert SsoDomain.objects.for_tenant(tenant_a.tenant).get(domain="new.test").status == SsoDomainStatus.PENDING
    assert Client().post("/login/", {"username": "someone@new.test", "password": PASSWORD}).status_code == 302


def test_the_break_glass_administrator_keeps_password_login_with_its_second_factor_and_it_is_recorded(
    tenant_a, operator, oidc_provider
):
    admin = tenant_a.members["admin"]
    with totp_clock() as clock:
        device = TOTPDevice.objects.create(user=admin.user, name="Phone", confirmed=True)
        configure_sso(tenant_a, oidc_provider, operator, enforced=True, break_glass_email="admin@alpha.test")
        client = Client()
        page = client.post("/login/", {"username": "admin@alpha.test", "password": PASSWORD})
        # The password is accepted, and MFA's second step follows (not yet logged in).
        assert page.status_code == 302 and page["Location"] == reverse("mfa:login_verify")
        assert signed_in_as(client) is None
        api = api_client_for(None)
        without_otp = api.post(
            "/api/v1/auth/token/", {"email": "admin@alpha.test", "password": PASSWORD}, format="json"
        )
        assert without_otp.status_code == 401 and without_otp.json()["error"]["code"] == "mfa_required"
        token = api.post(
            "/api/v1/auth/token/",
            {"email": "admin@alpha.test", "password": PASSWORD, "otp": totp_code(device, clock.now)},
            format="json",
        )
        assert token.status_code == 201
    assert entries(tenant_a, action="sso.break_glass_attempt").count() == 3
    # Without its second factor the break-glass account is refused like everyone else.
    device.delete()
    refused = api.post("/api/v1/auth/token/", {"email": "admin@alpha.test", "password": PASSWORD}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_required"
    # Everyone else of the domain is still refused.
    assert Client().post("/login/", {"username": "tech@alpha.test", "password": PASSWORD}).status_code == 403


def test_new_tenant_administrator_roles_hold_admin_identity_and_the_migration_grants_it_to_existing_ones(tenant_a):
    migration = importlib.import_module("copilot_admin.identity.migrations.0003_sso_configuration_and_domains")
    role = tenant_a.members["admin"].role
    role.permissions = [code for code in role.permissions if code != Perm.IDENTITY]
    role.save()
    migration.grant_identity_to_tenant_administrators(apps, None)
    role.refresh_from_db()
    assert Perm.IDENTITY in role.permissions
    assert Perm.IDENTITY not in tenant_a.members["tech"].role.permissions


def test_the_sso_api_refuses_what_its_schema_does_not_accept(tenant_a, operator):
    api = api_client_for(tenant_a.members["admin"].user)
    for body in ({"client_id": 0.5}, {"enabled": 1}, {"email_domains": [7]}, {"enforce": True}, {"domains": []}):
        response = api.patch("/api/v1/tenants/alpha/sso/", body, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid", body
    operator_api = api_client_for(operator)
    assert operator_api.get("/api/v1/platform/sso-domains/?status=maybe").status_code == 400
    assert operator_api.get("/api/v1/platform/sso-domains/?status=").status_code == 400
    assert operator_api.get("/api/v1/platform/sso-domains/?status=all").status_code == 200
    sso_configuration_update(actor=tenant_a.members["admin"], email_domains=["alpha.test"])
    claim = SsoDomain.objects.for_tenant(tenant_a.tenant).get()
    refused = operator_api.post(f"/api/v1/platform/sso-domains/{claim.pk}/approve/", {"x": 1}, format="json")
    assert refused.status_code == 400
    claim.refresh_from_db()
    assert claim.status == SsoDomainStatus.PENDING

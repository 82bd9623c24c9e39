"""MFA end to end through Debian's chromium: a tenant requires MFA, its administrator logs in, is
held on the enrolment page, scans (reads) the QR secret, confirms the first code, sees its
recovery codes once, logs out, and logs in again with password + code (a wrong code first).
Then a security key, through chromium's virtual authenticator (DevTools `WebAuthn` domain):
registered on the MFA page and used to log in, with the hand-written WebAuthn script under
the strict Content-Security-Policy.

The TOTP clock is django-otp's, moved by hand (the live server runs in this process), so no
step depends on the wall clock.
"""

import re
from base64 import b32decode

import pytest
from django_otp.oath import TOTP

from copilot_admin.identity import mfa
from copilot_admin.identity.models import MfaSecurityKey
from tests.browser.test_admin_flow import browser_page  # noqa: F401
from tests.factories import PASSWORD
from tests.identity.helpers import totp_clock

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def code_for(secret_b32: str, at: float) -> str:
    padded = secret_b32 + "=" * (-len(secret_b32) % 8)
    totp = TOTP(b32decode(padded), step=30, t0=0, digits=6)
    totp.time = at
    return f"{totp.token():06d}"


def password_step(page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_role("button", name="Continue").click()  # e-mail first (SSO or password)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_required_totp_enrolment_and_login(browser_page, tenant_a):  # noqa: F811
    from playwright.sync_api import expect

    page = browser_page
    mfa.mfa_tenant_required_set(actor=tenant_a.members["admin"], mfa_required=True)
    with totp_clock() as clock:
        password_step(page, "admin@alpha.test")
        # Held on the enrolment page: the tenant is out of reach until a factor exists.
        expect(page).to_have_url(re.compile(r"/account/mfa/$"))
        expect(page.locator("#mfa-enrolment-required")).to_be_visible()
        page.goto("/t/alpha/")
        expect(page).to_have_url(re.compile(r"/account/mfa/$"))

        page.get_by_role("link", name="Add an authenticator app").click()
        expect(page).to_have_url(re.compile(r"/account/mfa/totp/$"))
        expect(page.locator(".mfa-qr svg")).to_be_visible()
        secret = page.locator("#totp-secret").inner_text()
        page.get_by_label("Name (e.g. the phone)").fill("Work phone")
        page.get_by_label("The code the app shows now").fill(code_for(secret, clock.now))
        page.get_by_role("button", name="Verify and add").click()

        expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
        codes = page.locator("#recovery-codes").inner_text().split()
        assert len(codes) == mfa.RECOVERY_CODE_COUNT
        page.get_by_role("link", name="I have saved them").click()
        expect(page.get_by_text("Work phone")).to_be_visible()
        page.goto("/t/alpha/")
        expect(page).to_have_url(re.compile(r"/t/alpha/$"))
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/login/$"))  # the logout's redirect lands before the next goto

        # Log in again: the password alone does not get in.
        password_step(page, "admin@alpha.test")
        expect(page).to_have_url(re.compile(r"/login/mfa/$"))
        expect(page.get_by_role("heading", name="Second factor")).to_be_visible()
        page.goto("/t/alpha/")
        expect(page).to_have_url(re.compile(r"/login/"))
        page.goto("/login/mfa/")
        clock.advance(30)
        page.get_by_label("Code").fill("000000" if code_for(secret, clock.now) != "000000" else "111111")
        page.get_by_role("button", name="Verify").click()
        expect(page.get_by_text("The second factor is wrong or was used already.")).to_be_visible()
        page.get_by_label("Code").fill(code_for(secret, clock.now))
        page.get_by_role("button", name="Verify").click()
        expect(page).to_have_url(re.compile(r"/t/alpha/$"))
        expect(page.get_by_role("heading", name="Alpha MSP", exact=True)).to_be_visible()


def test_security_key_with_chromium_virtual_authenticator(browser_page, tenant_a):  # noqa: F811
    from playwright.sync_api import expect

    page = browser_page
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": False,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )

    password_step(page, "tech@alpha.test")
    expect(page).to_have_url(re.compile(r"/t/alpha/$"))
    page.goto("/account/mfa/")
    page.get_by_label("Name of the key").fill("Virtual key")
    page.get_by_role("button", name="Add a security key").click()
    expect(page.locator("#mfa-key-recovery-codes")).to_contain_text("Your recovery codes")
    assert MfaSecurityKey.objects.filter(user__email="tech@alpha.test", name="Virtual key").exists()
    page.goto("/account/mfa/")
    expect(page.get_by_text("Virtual key")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))  # the logout's redirect lands before the next goto

    password_step(page, "tech@alpha.test")
    expect(page).to_have_url(re.compile(r"/login/mfa/$"))
    page.get_by_role("button", name="Use your security key").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/$"))
    assert MfaSecurityKey.objects.get(user__email="tech@alpha.test").last_used_at is not None

"""Identity test fixtures: the copilot's simulator, for integration key calls that go all the way;
and a real OpenID Connect provider for the SSO tests: panva/oidc-provider (OpenID Certified), run
by Node.js on loopback from tests/identity/oidc_provider/ (`make test` installs it with `npm ci`;
this fixture does too when it is missing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests

from copilot_admin.identity.models import SsoDomain
from copilot_admin.identity.sso_services import sso_configuration_update, sso_domain_decide
from tests.conftest import require_service
from tests.copilot.conftest import sim, simulator_url  # noqa: F401
from tests.regions.fixtures import deployment_factory  # noqa: F401

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
CLIENT_ID = "copilot-admin-test"
CLIENT_SECRET = "loopback-test-secret"  # the loopback provider's test client
SECRET_ENV = "OIDC_CLIENT_SECRET_TEST"
TEST_CALLBACK = "http://testserver/login/sso/callback/"


@dataclass
class LoopbackProvider:
    issuer: str
    process: subprocess.Popen

    def tamper(self, **params) -> None:
        """Have the provider rewrite the next ID token it issues (see server.mjs)."""
        response = requests.post(f"{self.issuer}/_test/tamper?{urlencode(params)}", timeout=10)
        assert response.status_code == 204

    @property
    def port(self) -> int:
        return urlsplit(self.issuer).port


def start_provider(redirect_uris: list[str]) -> LoopbackProvider:
    """Start the provider (any free port) with our test client; stop it with `stop_provider`."""
    require_service("node", shutil.which("node") is not None, "Node.js runs the loopback OpenID Connect provider")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=PROVIDER_DIR, check=True)
    clients = [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris}]
    process = subprocess.Popen(
        ["node", str(PROVIDER_DIR / "server.mjs")],
        env={"PATH": os.environ.get("PATH", ""), "OIDC_CLIENTS": json.dumps(clients), "OIDC_PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline()  # blocks until it listens (or exits: empty line)
    if not line.startswith("READY "):
        process.kill()
        pytest.fail(f"the loopback OpenID Connect provider did not start: {line!r}")
    return LoopbackProvider(issuer=line.split()[1], process=process)


def stop_provider(provider: LoopbackProvider) -> None:
    provider.process.terminate()
    provider.process.wait(timeout=10)


@pytest.fixture(scope="session")
def oidc_provider():
    provider = start_provider([TEST_CALLBACK])
    yield provider
    stop_provider(provider)


@pytest.fixture
def sso_secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)


def configure_sso(world, provider, operator, *, domains=None, approve=True, issuer=None, **options):
    """The tenant's administrator sets up SSO with the loopback provider; the operator approves."""
    slug = world.tenant.slug
    sso_configuration_update(
        actor=world.members["admin"],
        enabled=True,
        issuer=issuer or provider.issuer,
        client_id=CLIENT_ID,
        client_secret_env=SECRET_ENV,
        email_domains=domains or [f"{slug}.test"],
        **options,
    )
    if approve:
        for claim in SsoDomain.objects.for_tenant(world.tenant):
            sso_domain_decide(actor=operator, domain_id=claim.pk, approve=True)


def authorize(provider_url: str, *, login_hint: str | None = None) -> str:
    """Follow the provider's redirects (its automatic sign-in and consent) from the authorization
    URL the portal sent the browser to; answers the portal callback's path and query."""
    if login_hint is not None:  # a different account signs in at the provider than the one typed in
        parts = urlsplit(provider_url)
        query = parse_qs(parts.query)
        query["login_hint"] = [login_hint]
        provider_url = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    session = requests.Session()
    url = provider_url
    for _ in range(10):
        response = session.get(url, allow_redirects=False, timeout=10)
        location = response.headers.get("location", "")
        assert response.status_code in (302, 303), (response.status_code, response.text[:500])
        if location.startswith("http://testserver/"):
            return location[len("http://testserver") :]
        url = urljoin(url, location)
    raise AssertionError("the provider never redirected back to the portal")


def sign_in(client, email: str, *, login_hint: str | None = None, next_url: str = ""):
    """The whole flow with Django's test client: start, the provider, the callback. Answers
    (callback path, callback response)."""
    start = client.post("/login/sso/", {"email": email, "next": next_url})
    assert start.status_code == 302, start.content[:500]
    callback = authorize(start["Location"], login_hint=login_hint)
    return callback, client.get(callback)

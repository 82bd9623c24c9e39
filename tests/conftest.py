"""Shared fixtures: two tenants with every demo role, API and browser clients, and the
services switch (REQUIRE_SERVICES=1 makes a missing PostgreSQL/Redis a failure, not a skip)."""

import uuid
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from knox.models import AuthToken
from rest_framework.test import APIClient

from tenants.models import ClientCompany, Membership, Tenant
from tests.factories import PASSWORD, CompanyFactory, TenantFactory, UserFactory, add_member

ROLES = {
    "admin": "Tenant Administrator",
    "tech": "Technician",
    "comanaged": "Co-managed Help Desk",
    "auditor": "Compliance Auditor",
}


def require_service(name: str, available: bool, reason: str = "") -> None:
    """Skip when a real service is missing, except under REQUIRE_SERVICES, where it fails."""
    if available:
        return
    message = f"{name} is not available{': ' + reason if reason else ''}"
    if settings.REQUIRE_SERVICES:
        pytest.fail(message + " (REQUIRE_SERVICES is on)")
    pytest.skip(message)


@dataclass
class TenantWorld:
    tenant: Tenant
    companies: list[ClientCompany]
    members: dict[str, Membership] = field(default_factory=dict)

    @property
    def co_managed_company(self) -> ClientCompany:
        return self.companies[0]


def build_tenant(slug: str, name: str) -> TenantWorld:
    tenant = TenantFactory(slug=slug, name=name)
    companies = [
        CompanyFactory(tenant=tenant, name=f"{name} Client One", co_managed=True),
        CompanyFactory(tenant=tenant, name=f"{name} Client Two", co_managed=True),
        CompanyFactory(tenant=tenant, name=f"{name} Client Three", co_managed=False),
    ]
    world = TenantWorld(tenant=tenant, companies=companies)
    for key, role_name in ROLES.items():
        world.members[key] = add_member(
            tenant, role_name, email=f"{key}@{slug}.test", full_name=f"{name} {key}",
            companies=companies[:1] if key == "comanaged" else (),
        )
    return world


@pytest.fixture
def tenant_a(db) -> TenantWorld:
    return build_tenant("alpha", "Alpha MSP")


@pytest.fixture
def tenant_b(db) -> TenantWorld:
    return build_tenant("bravo", "Bravo MSP")


@pytest.fixture
def operator(db):
    return UserFactory(email="operator@platform.test", is_platform_operator=True)


@pytest.fixture
def password() -> str:
    return PASSWORD


def api_client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        _, token = AuthToken.objects.create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api_for():
    return api_client_for


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # Hashing demo passwords with PBKDF2 would dominate the suite's run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Limit counters in Redis outlive a test's transaction: give each test its own keys.
    settings.USAGE_LIMITS_KEY_PREFIX = f"copilot-admin-test:{uuid.uuid4().hex}:"
    settings.LOGIN_THROTTLE_KEY_PREFIX = f"login-throttle-test:{uuid.uuid4().hex}:"
    # So are cached access decisions (a test's rolled-back rows bump no version).
    settings.ACCESS_CACHE_KEY_PREFIX = f"access-test:{uuid.uuid4().hex}:"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

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


def require_redis() -> None:
    """The test measures the configuration with Redis (`REDIS_URL`)."""
    require_service("Redis", bool(settings.REDIS_URL), "REDIS_URL is not set")


def query_plan(queryset) -> str:
    """PostgreSQL's EXPLAIN of `queryset`, as text (the index tests read which indexes it uses)."""
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


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
    # Deployment health is written per call in tests (the batching has its own tests).
    settings.DEPLOYMENT_HEALTH_FLUSH_SECONDS = 0
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _django_db_flags(transaction=False, reset_sequences=False, databases=None, serialized_rollback=False,
                     available_apps=None):
    """The flags of a `django_db` marker, positional or keyword, as pytest-django reads them."""
    return transaction or reset_sequences, serialized_rollback


def transactional_tests_without_serialized_rollback(items) -> list[str]:
    """The node ids of transactional tests that do not restore the migrated rows.

    Such a test's closing flush fires post_migrate, which re-creates the content types and
    permissions under new ids; the next `serialized_rollback` test then inserts the captured rows
    with their old ids and fails in setup on the (app_label, model) unique key. So every
    transactional test here uses serialized_rollback: its flush fires nothing and the next one
    starts from the migrated rows, whatever the order."""
    offenders = []
    for item in items:
        marker = item.get_closest_marker("django_db")
        transactional, serialized = _django_db_flags(*marker.args, **marker.kwargs) if marker else (False, False)
        fixtures = getattr(item, "fixturenames", ())
        transactional = transactional or "transactional_db" in fixtures or "live_server" in fixtures
        serialized = serialized or "django_db_serialized_rollback" in fixtures
        if transactional and not serialized:
            offenders.append(item.nodeid)
    return offenders


def pytest_collection_modifyitems(items):
    offenders = transactional_tests_without_serialized_rollback(items)
    if offenders:
        raise pytest.UsageError(
            "transactional tests must also pass serialized_rollback=True (see tests/conftest.py): "
            + ", ".join(offenders)
        )

"""Under REQUIRE_SERVICES (CI) the suite really runs on PostgreSQL and Redis: a missing or
unconfigured service fails here instead of letting the suite pass on the fallbacks."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from tests.conftest import require_service


def test_database_is_postgresql_when_services_are_required(db):
    require_service("PostgreSQL", connection.vendor == "postgresql", "DATABASE_URL does not point at PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("select 1")
        assert cursor.fetchone() == (1,)


def test_cache_is_redis_when_services_are_required():
    require_service("Redis", bool(settings.REDIS_URL), "REDIS_URL is not set")
    cache.set("services-probe", "ok", 5)
    assert cache.get("services-probe") == "ok"
    assert "RedisCache" in settings.CACHES["default"]["BACKEND"]


@pytest.mark.parametrize("flag", [True])
def test_require_service_fails_instead_of_skipping(settings, flag):
    settings.REQUIRE_SERVICES = flag
    with pytest.raises(pytest.fail.Exception):
        require_service("Imaginary service", False)

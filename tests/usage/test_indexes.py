"""The usage roll-ups' indexes: in the migration state, and used by the planner at a realistic size.

The dashboard and the pattern review read the roll-ups (`DailyUsage`, `HourlyUsage`), never
the usage records. The EXPLAIN tests run on PostgreSQL with a few hundred thousand generated
rows after ANALYZE, with the planner's default settings (no `enable_seqscan = off`).
"""
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from copilot_admin.usage.models import DailyUsage, HourlyUsage
from copilot_admin.usage.rollups import HOURLY_KEPT
from tenants.models import Membership
from tests.conftest import query_plan, require_service

HOURLY_KEPT_HOURS = int(HOURLY_KEPT.total_seconds() // 3600)


def _index_names(state, model):
    return {index.name: index for index in state.models["usage", model].options["indexes"]}


def test_the_migrations_create_the_usage_indexes(db):
    state = MigrationLoader(connection).project_state()
    records = _index_names(state, "usagerecord")
    assert records["usage_record_tenant_time"].fields == ["tenant", "created_at"]
    daily = _index_names(state, "dailyusage")
    assert daily["usage_daily_tenant_day"].fields == ["tenant", "day"]
    assert daily["usage_daily_tenant_member_day"].fields == ["tenant", "membership", "day"]
    assert _index_names(state, "hourlyusage")["usage_hourly_tenant_hour"].fields == ["tenant", "hour"]


@pytest.fixture
def big_rollups(db, tenant_a, tenant_b):
    """Per tenant: every membership x 25 features x 1,500 days of daily rows, and every
    membership x the hourly table's retention (12 weeks, kept for the anomaly baselines) of
    hourly rows, for both tenants."""
    require_service("PostgreSQL", connection.vendor == "postgresql", "the plans asserted are PostgreSQL's")
    today = timezone.now().date()
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    with connection.cursor() as cursor:
        for world in (tenant_a, tenant_b):
            for membership_id in Membership.objects.for_tenant(world.tenant).values_list("pk", flat=True):
                cursor.execute(
                    f"INSERT INTO {DailyUsage._meta.db_table} (tenant_id, membership_id, feature, day, requests, "
                    "failed, filtered, rate_limited, prompt_tokens, completion_tokens) "
                    "SELECT %s, %s, 'f' || (g %% 25), %s::date - (g / 25), 3, 0, 0, 0, 100, 50 "
                    "FROM generate_series(0, 25 * 1500 - 1) AS g",
                    [world.tenant.pk, membership_id, today],
                )
                cursor.execute(
                    f"INSERT INTO {HourlyUsage._meta.db_table} (tenant_id, membership_id, hour, requests, tokens) "
                    "SELECT %s, %s, %s - g * interval '1 hour', 3, 150 FROM generate_series(0, %s - 1) AS g",
                    [world.tenant.pk, membership_id, hour, HOURLY_KEPT_HOURS],
                )
        cursor.execute(f"ANALYZE {DailyUsage._meta.db_table}")
        cursor.execute(f"ANALYZE {HourlyUsage._meta.db_table}")
    return tenant_a.tenant


def test_the_dashboards_per_tenant_range_uses_an_index(big_rollups):
    today = timezone.now().date()
    rows = DailyUsage.objects.for_tenant(big_rollups).filter(day__gte=today - timedelta(days=30), day__lte=today)
    plan = query_plan(rows.values("day").order_by("day"))
    assert "Index" in plan and "usage_daily_tenant" in plan, plan
    membership = Membership.objects.for_tenant(big_rollups).first()
    plan = query_plan(rows.filter(membership_id=membership.pk).values("feature"))
    assert "Index" in plan and "usage_daily_tenant" in plan, plan


def test_the_pattern_reviews_hour_range_uses_the_tenant_hour_index(big_rollups):
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    rows = HourlyUsage.objects.for_tenant(big_rollups).filter(hour__gte=end - timedelta(hours=24), hour__lt=end)
    plan = query_plan(rows.values_list("membership_id", flat=True))
    assert "usage_hourly_tenant_hour" in plan, plan

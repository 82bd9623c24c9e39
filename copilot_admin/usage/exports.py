"""Usage grouped by day, user, client company or feature between two UTC days, for the
usage-by-company page and the streamed export (`usage/export/`). Metadata only: counts and
token sums, with the group's name (a day, a user's e-mail, a company's name, a feature).

The groups come from the usage records of the range (the roll-ups are kept per user and
feature, not per company), read through the (tenant, created_at) index: the cost follows the
range, not the history, and the grouped result is one row per group. A record kept before the
company was recorded, or refused before the company was checked, falls in the "no company" group.
"""

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from copilot_admin.usage.models import UsageOutcome, UsageRecord
from tenants.models import Tenant


class GroupBy:
    DAY = "day"
    USER = "user"
    COMPANY = "company"
    FEATURE = "feature"
    CHOICES = (DAY, USER, COMPANY, FEATURE)


class ExportFormat:
    CSV = "csv"
    JSONL = "jsonl"
    CHOICES = (CSV, JSONL)
    CONTENT_TYPES = {CSV: "text/csv; charset=utf-8", JSONL: "application/x-ndjson; charset=utf-8"}


NUMBERS = ("requests", "refused", "rate_limited", "failed", "filtered", "prompt_tokens", "completion_tokens", "tokens")
KEY_COLUMNS = {
    GroupBy.DAY: ("day",),
    GroupBy.USER: ("member", "email"),
    GroupBy.COMPANY: ("company_id", "company_name"),
    GroupBy.FEATURE: ("feature",),
}
_FAILED = (UsageOutcome.FAILED, UsageOutcome.ERROR, UsageOutcome.CANCELLED)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _aggregates() -> dict:
    """Each number under `n_<name>` (an aggregate may not shadow the field it sums)."""
    refused = Q(outcome=UsageOutcome.REFUSED)
    return {
        "n_requests": Count("pk", filter=~refused),
        "n_refused": Count("pk", filter=refused),
        "n_rate_limited": Count("pk", filter=refused & Q(error_code="rate_limited")),
        "n_failed": Count("pk", filter=Q(outcome__in=_FAILED)),
        "n_filtered": Count("pk", filter=Q(error_code="content_filtered")),
        "n_prompt_tokens": Coalesce(Sum("prompt_tokens"), Value(0)),
        "n_completion_tokens": Coalesce(Sum("completion_tokens"), Value(0)),
        "n_tokens": Coalesce(Sum(F("prompt_tokens") + F("completion_tokens")), Value(0)),
    }


def _named(rows) -> list[dict]:
    return [{(name[2:] if name.startswith("n_") else name): value for name, value in row.items()} for row in rows]


def usage_grouped(
    *, tenant: Tenant, since: date, until: date, group_by: str, membership_id: int | None = None,
    feature: str | None = None,
) -> list[dict]:
    """One row per group (key columns, then `NUMBERS`): `requests` calls that passed the limits,
    `refused` calls refused after the access checks (of which `rate_limited` by a limit),
    `failed` and `filtered` among the requests, tokens. Sorted by the key (days ascending;
    users, companies and features by tokens, heaviest first)."""
    start = datetime.combine(since, time.min, tzinfo=UTC)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
    records = UsageRecord.objects.for_tenant(tenant).filter(created_at__gte=start, created_at__lt=end)
    if membership_id is not None:
        records = records.filter(membership_id=membership_id)
    if feature:
        records = records.filter(feature=feature)
    if group_by == GroupBy.DAY:
        rows = records.annotate(day=TruncDate("created_at", tzinfo=UTC)).values("day").annotate(**_aggregates())
        return _named(rows.order_by("day"))
    if group_by == GroupBy.USER:
        rows = records.values(member=F("membership_id"), email=F("membership__user__email"))
    elif group_by == GroupBy.COMPANY:
        rows = records.values("company_id", company_name=F("company__name"))
    else:
        rows = records.values("feature")
    return _named(rows.annotate(**_aggregates()).order_by("-n_tokens", "-n_requests", KEY_COLUMNS[group_by][0]))


# Key columns as exported: `member` is the user's id in this tenant (the `user` filter of `usage/`).
EXPORT_NAMES = {"member": "user"}


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _plain(value):
    return value.isoformat() if isinstance(value, date) else value


def usage_export_lines(rows: list[dict], *, group_by: str, fmt: str) -> Iterator[str]:
    """The rows as CSV (a header line first) or JSON Lines; days are UTC."""
    columns = (*KEY_COLUMNS[group_by], *NUMBERS)
    if fmt == ExportFormat.JSONL:
        for row in rows:
            yield json.dumps({EXPORT_NAMES.get(name, name): _plain(row[name]) for name in columns}) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([EXPORT_NAMES.get(name, name) for name in columns])
    for row in rows:
        writer.writerow([_cell(_plain(row[name])) for name in columns])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()

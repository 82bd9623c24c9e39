"""Display time zones: the IANA names a user may pick, their validation, and the zone a page
shows times in.

Stored times are UTC and stay UTC wherever a machine reads them (the API, exports, audit
chains, e-mails, tasks). A user's zone changes only how pages show times to that user: the
`UserTimeZoneMiddleware` activates it for pages, never for `/api/`. An empty zone is UTC.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, tzinfo
from functools import lru_cache

from django.core.exceptions import ValidationError
from django.utils import timezone

UTC_NAME = "UTC"

# Offered first in the picker: the zones MSP staff most often work in; the rest follow A-Z.
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Amsterdam",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Zurich",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Helsinki",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Sao_Paulo",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)


@lru_cache(maxsize=1)
def available_zones() -> frozenset[str]:
    """Every IANA zone name this machine's time zone database knows (UTC always)."""
    return frozenset(zoneinfo.available_timezones()) | {UTC_NAME}


def is_valid_zone(name: str) -> bool:
    """Whether `name` is a zone a user may pick: blank (UTC) or a known IANA name."""
    return name == "" or name in available_zones()


def validate_time_zone(value: str) -> None:
    """Model and form validator: a known IANA name, or blank for UTC."""
    if not is_valid_zone(value):
        raise ValidationError(
            "Unknown time zone %(value)s: pick one from the list (an IANA name such as Europe/Berlin).",
            code="invalid_time_zone", params={"value": value},
        )


def time_zone_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """The picker's options, grouped: common zones first, then every zone by region."""
    zones = available_zones()
    common = [(name, name.replace("_", " ")) for name in COMMON_ZONES if name in zones]
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(zones - set(COMMON_ZONES)):
        # Legacy aliases ("EST5EDT", "Etc/GMT+5", "US/Eastern") are valid but not offered.
        region, _, _ = name.partition("/")
        if not _ or region in {"Etc", "SystemV", "US"}:
            continue
        groups.setdefault(region, []).append((name, name.replace("_", " ")))
    return [("Common", common), *sorted(groups.items())]


def zone_of(name: str) -> tzinfo:
    """The zone for a stored name; blank or unknown (the database lost it) is UTC, which
    needs no time zone database."""
    if name == "" or name == UTC_NAME or not is_valid_zone(name):
        return UTC
    return zoneinfo.ZoneInfo(name)


def zone_label(name: str) -> str:
    """How a stored zone reads on a page: its IANA name, or UTC when blank."""
    return name or UTC_NAME


def clock_words(moment: datetime) -> str:
    """"01:00 CET": the moment's time of day in the active zone, with the zone's abbreviation
    (UTC when no zone is active: the API, tasks, e-mails)."""
    local = timezone.localtime(moment)
    return f"{local:%H:%M} {local.tzname()}"


def datetime_words(moment: datetime) -> str:
    """"2026-12-03 15:00 CET": date and time in the active zone, with its abbreviation."""
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"

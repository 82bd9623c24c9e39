"""Words for times and waits that people read on pages ("in 2 h 01 min", "00:00 UTC").

Moments are told in the active zone, named: the user's own on pages (UserTimeZoneMiddleware),
UTC in the API, tasks and e-mails."""

from datetime import datetime, timedelta

from copilot_admin.core.timezones import datetime_words


def counted(count: int, one: str, many: str) -> str:
    """A count with its noun: "1 user", "3 users"."""
    return f"{count} {one if count == 1 else many}"


def duration_words(delta: timedelta) -> str:
    """A wait as people say it: "45 s", "12 min", "2 h 01 min", "3 days 4 h"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h"


def moment_words(moment: datetime, *, now: datetime) -> str:
    """"2026-12-03 14:00 UTC (in 3 h 00 min)": the moment in the active zone (named) and how
    far off it is."""
    return f"{datetime_words(moment)} (in {duration_words(moment - now)})"

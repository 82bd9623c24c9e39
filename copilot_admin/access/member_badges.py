"""Notes about a member that rooms above the directory know and its pages show: e.g. the
usage room's "copilot access suspended until ..., see case 12". Each room registers a function
(in its AppConfig.ready()) answering, for a page of memberships at once, the badges of each;
the users list and the user's page in `directory` show them without importing those rooms.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tenants.models import Membership, Tenant


@dataclass(frozen=True)
class MemberBadge:
    """`label` is the badge; `detail` the sentence beside it (until when, whom to ask);
    `url_name` and `url_kwargs` the page about it inside the tenant (the case)."""

    label: str
    detail: str
    tone: str = "warning"
    url_name: str | None = None
    url_kwargs: dict = field(default_factory=dict)


BadgeSource = Callable[[Tenant, list[Membership]], dict[int, list[MemberBadge]]]

_SOURCES: dict[str, BadgeSource] = {}


def member_badge_source_register(*, key: str, source: BadgeSource) -> None:
    _SOURCES[key] = source


def member_badges(*, tenant: Tenant, memberships: Iterable[Membership]) -> dict[int, list[MemberBadge]]:
    """membership id -> its badges (a fixed number of queries per source, whatever the page size)."""
    memberships = list(memberships)
    badges: dict[int, list[MemberBadge]] = {}
    for source in _SOURCES.values():
        for membership_id, found in source(tenant, memberships).items():
            badges.setdefault(membership_id, []).extend(found)
    return badges

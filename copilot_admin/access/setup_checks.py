"""The tenant's setup checklist: what a new tenant still has to do before its people use the
copilot (first administrator, SSO, MFA, roles, companies, limits, copilot switches).

Each room registers the checks it can answer (in its AppConfig.ready()), so the overview page
in `directory` shows items from rooms it may not import (usage, copilot, identity). A check is
read-only and cheap: a handful of queries for the whole list.
"""

from collections.abc import Callable
from dataclasses import dataclass

from tenants.models import Tenant


@dataclass(frozen=True)
class SetupItem:
    """One line of the checklist: `done`, what it means (`detail`), and the page that does it
    (`url_name` inside the tenant, None when no page is there yet)."""

    key: str
    label: str
    done: bool
    detail: str
    url_name: str | None = None


SetupCheck = Callable[[Tenant], SetupItem]

_CHECKS: dict[str, tuple[int, SetupCheck]] = {}


def setup_check_register(*, key: str, order: int, check: SetupCheck) -> None:
    """Add (or replace, by `key`) a check; `order` places it in the list."""
    _CHECKS[key] = (order, check)


def setup_checklist(*, tenant: Tenant) -> list[SetupItem]:
    """The tenant's checklist, in order."""
    return [check(tenant) for _, check in sorted(_CHECKS.values(), key=lambda item: item[0])]

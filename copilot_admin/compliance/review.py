"""The access review: who held which role, permissions, companies and copilot access at a moment,
rebuilt from the audit log.

How: the state now (memberships, roles, companies, copilot access) is rewound to `at` by undoing,
newest first, every recorded change made after `at` (each entry holds the values before and
after). Undoing needs only the entries newer than `at`, which the retention purge never removes
first, so a review of any moment within the log's life works however old the log is.

Limits (also on the page):
- It is as complete as the log: a change made outside the services (directly in the database)
  is not undone. `audit_verify` (and its signed checkpoints) tells whether the log is complete.
- Members are named by their e-mail today (a membership's user never changes, but an account's
  e-mail can); role and company names are those at `at`.
- A pending invitation (not accepted at `at`) granted nothing and is not listed.
- Copilot access reads the abuse rules' recorded state: a suspension that lapsed by `at` reads
  as active.
- Before a membership, role or company was created, or when its creation predates the log, the
  earliest state the log can tell is its state at its first recorded change.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime

from django.utils.dateparse import parse_datetime

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import permission_choices
from copilot_admin.audit.models import RAW_CHANGES_KEY, AuditEntry
from copilot_admin.usage.models import AccessStatus, CopilotAccess
from tenants.models import ClientCompany, Membership, UserType

REVIEWED_OBJECT_TYPES = ("membership", "role", "company", "copilot_access")
# Actions that bring an object into being (`role.clone` names a role created from another).
CREATE_VERBS = frozenset({"create", "clone"})
CSV_COLUMNS = ("email", "user_type", "role", "permissions", "companies", "is_active", "copilot_access")


@dataclass
class _Member:
    email: str
    user_type: str
    role_id: int | None
    is_active: bool
    accepted: bool
    companies: set[str] = field(default_factory=set)


@dataclass
class _Role:
    name: str
    permissions: list[str]


@dataclass
class _Access:
    membership_id: int | None
    status: str
    suspended_until: datetime | None


@dataclass(frozen=True)
class ReviewRow:
    email: str
    user_type: str
    role: str
    permissions: list[str]
    companies: list[str]
    is_active: bool
    copilot_access: str

    @property
    def user_type_label(self) -> str:
        """The user type as the pages name it (exports keep the code)."""
        return dict(UserType.choices).get(self.user_type, self.user_type)

    @property
    def permission_labels(self) -> list[str]:
        """The permissions by their names in the role editor (exports keep the codes)."""
        labels = dict(permission_choices())
        return [labels.get(code, code) for code in self.permissions]

    def as_dict(self) -> dict:
        return {
            "email": self.email, "user_type": self.user_type, "role": self.role, "permissions": self.permissions,
            "companies": self.companies, "is_active": self.is_active, "copilot_access": self.copilot_access,
        }

    def as_csv(self) -> list[str]:
        return [self.email, self.user_type, self.role, " ".join(self.permissions), "; ".join(self.companies),
                "yes" if self.is_active else "no", self.copilot_access]


def _none(value):
    return None if value in (None, "None", "") else value


def _int(value) -> int | None:
    value = _none(value)
    return int(value) if value is not None and str(value).isdigit() else None


def _bool(value) -> bool:
    return str(value) == "True"


def _moment(value) -> datetime | None:
    value = _none(value)
    return parse_datetime(str(value).replace(" ", "T", 1)) if value is not None else None


def _permissions(value) -> list[str]:
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return []
    return [str(code) for code in parsed] if isinstance(parsed, list) else []


class _State:
    """The tenant's access state, rewound one entry at a time."""

    def __init__(self, tenant):
        self.members: dict[int, _Member] = {}
        for membership in Membership.objects.for_tenant(tenant).select_related("user").prefetch_related("companies"):
            self.members[membership.pk] = _Member(
                email=membership.user.email, user_type=membership.user_type, role_id=membership.role_id,
                is_active=membership.is_active, accepted=membership.accepted_at is not None,
                companies={company.name for company in membership.companies.all()},
            )
        self.roles = {
            role.pk: _Role(name=role.name, permissions=list(role.permissions))
            for role in SecurityRole.objects.for_tenant(tenant)
        }
        self.companies = dict(ClientCompany.objects.for_tenant(tenant).values_list("pk", "name"))
        self.access = {
            access.pk: _Access(access.membership_id, access.status, access.suspended_until)
            for access in CopilotAccess.objects.for_tenant(tenant)
        }

    # -- undo one entry ---------------------------------------------------------------------------

    def undo(self, entry: AuditEntry) -> None:
        verb = entry.action.rsplit(".", 1)[-1]
        # Entries show names (a role by its name); the raw ids and codes the state is rebuilt
        # from are kept beside them, where they differ (audit.models.RAW_CHANGES_KEY). Company
        # scope changes are rebuilt by name, as recorded.
        raw = (entry.metadata or {}).get(RAW_CHANGES_KEY, {})
        changes = {**(entry.changes or {}), **{name: values for name, values in raw.items() if isinstance(values, list)}}
        ids = [entry.object_id]
        if entry.object_id == "*":  # a bulk update: one entry for many rows (queryset_update_audited)
            ids = [str(pk) for pk in (entry.metadata or {}).get("ids", [])]
            changes = {name: [values[0][0], values[1]] for name, values in changes.items()
                       if isinstance(values, list) and len(values) == 2 and isinstance(values[0], list)
                       and len(values[0]) == 1}
        for object_id in ids:
            pk = _int(object_id)
            if pk is not None:
                getattr(self, f"_undo_{entry.object_type}")(pk, verb, changes, entry)

    def _undo_membership(self, pk, verb, changes, entry) -> None:
        if verb in CREATE_VERBS:
            self.members.pop(pk, None)
            return
        member = self.members.get(pk)
        if member is None:  # deleted after `at`: rebuilt from its deletion entry
            member = self.members[pk] = _Member(entry.object_repr, UserType.INTERNAL, None, True, True)
        for name, values in changes.items():
            if isinstance(values, dict) and values.get("type") == "m2m" and name == "companies":
                objects = set(values.get("objects", []))
                if values.get("operation") == "add":
                    member.companies -= objects
                else:
                    member.companies |= objects
            elif isinstance(values, list) and len(values) == 2:
                before = values[0]
                if name == "role":
                    member.role_id = _int(before)
                elif name == "user_type":
                    member.user_type = str(before)
                elif name == "is_active":
                    member.is_active = _bool(before)
                elif name == "accepted_at":
                    member.accepted = _none(before) is not None

    def _undo_role(self, pk, verb, changes, entry) -> None:
        if verb in CREATE_VERBS:
            self.roles.pop(pk, None)
            return
        role = self.roles.setdefault(pk, _Role(entry.object_repr, []))
        for name, values in changes.items():
            if isinstance(values, list) and len(values) == 2:
                if name == "name":
                    role.name = str(values[0])
                elif name == "permissions":
                    role.permissions = _permissions(values[0])

    def _undo_company(self, pk, verb, changes, entry) -> None:
        if verb in CREATE_VERBS:
            self.companies.pop(pk, None)
            return
        values = changes.get("name")
        if isinstance(values, list) and len(values) == 2:
            before, after = str(values[0]), str(values[1])
            self.companies[pk] = before
            for member in self.members.values():
                if after in member.companies:
                    member.companies = (member.companies - {after}) | {before}

    def _undo_copilot_access(self, pk, verb, changes, entry) -> None:
        if verb in CREATE_VERBS:
            self.access.pop(pk, None)
            return
        access = self.access.setdefault(pk, _Access(_int((changes.get("membership") or [None])[0]),
                                                    AccessStatus.ACTIVE, None))
        for name, values in changes.items():
            if isinstance(values, list) and len(values) == 2:
                if name == "status":
                    access.status = str(values[0])
                elif name == "suspended_until":
                    access.suspended_until = _moment(values[0])
                elif name == "membership":
                    access.membership_id = _int(values[0])

    # -- the review -------------------------------------------------------------------------------

    def rows(self, at: datetime) -> list[ReviewRow]:
        access_of = {}
        for access in self.access.values():
            lapsed = access.suspended_until is not None and access.suspended_until <= at
            suspended = access.status == AccessStatus.SUSPENDED
            access_of[access.membership_id] = AccessStatus.ACTIVE if suspended and lapsed else access.status
        rows = []
        for pk, member in self.members.items():
            if not member.accepted:
                continue
            role = self.roles.get(member.role_id)
            rows.append(ReviewRow(
                email=member.email, user_type=member.user_type,
                role=role.name if role else f"(role {member.role_id}, not recorded)",
                permissions=sorted(role.permissions) if role else [],
                companies=sorted(member.companies), is_active=member.is_active,
                copilot_access=str(access_of.get(pk, AccessStatus.ACTIVE)),
            ))
        return sorted(rows, key=lambda row: row.email)


def access_review(*, tenant, at: datetime) -> list[ReviewRow]:
    """Who held what in `tenant` at `at` (see the module docstring for how and its limits)."""
    state = _State(tenant)
    later = (
        AuditEntry.objects.for_tenant(tenant)
        .filter(object_type__in=REVIEWED_OBJECT_TYPES, created_at__gt=at)
        .only("id", "action", "object_type", "object_id", "object_repr", "changes", "metadata")
        .order_by("-id")
    )
    for entry in later.iterator(chunk_size=2000):
        state.undo(entry)
    return state.rows(at)

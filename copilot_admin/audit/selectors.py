"""Reads of the audit log: filtered entries, keyset pages (fast at millions of rows: a page
reads one index range, never counts or skips), one entry, and the readable form of changes.

Newest first by id, the order in which entries were recorded. (Chain order, `seq`, is the
order in which the sealer found them committed: the same but for entries whose transactions
committed out of order.)
"""

from dataclasses import dataclass

from django.db.models import CharField, Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast

from copilot_admin.audit.chain import HASHED_FIELDS, entry_hash
from copilot_admin.audit.models import (
    GENESIS_HASH,
    ActorType,
    AuditChainHead,
    AuditEntry,
    PlatformAuditor,
    chain_key,
)
from copilot_admin.core.errors import NotFound
from tenants.models import Membership, Tenant

PAGE_SIZE = 50


def audit_entries(*, tenant) -> QuerySet[AuditEntry]:
    """One tenant's entries."""
    return AuditEntry.objects.for_tenant(tenant)


def audit_entries_filter(queryset: QuerySet[AuditEntry], *, filters: dict) -> QuerySet[AuditEntry]:
    """Narrow by the AuditFilterForm's filters (since, until, actor, action, object_type,
    object_id, outcome, q). `action` without a dot, or ending with one, is a prefix (`auth`
    matches `auth.login`). `actor` is an id, `system`, or an e-mail (or part of one)."""
    if filters.get("since"):
        queryset = queryset.filter(created_at__gte=filters["since"])
    if filters.get("until"):
        queryset = queryset.filter(created_at__lt=filters["until"])
    actor = (filters.get("actor") or "").strip()
    if actor.isdigit():
        queryset = queryset.filter(actor_id=int(actor))
    elif actor.lower() in (ActorType.SYSTEM, ActorType.ANONYMOUS):
        queryset = queryset.filter(actor_type=actor.lower())
    elif actor:
        queryset = queryset.filter(actor_email__icontains=actor)
    action = (filters.get("action") or "").strip()
    if action and "." in action.rstrip("."):
        queryset = queryset.filter(action=action)
    elif action:
        queryset = queryset.filter(action__startswith=action.rstrip(".") + ".")
    if filters.get("object_type"):
        queryset = queryset.filter(object_type=filters["object_type"])
    if filters.get("object_id"):
        queryset = queryset.filter(object_id=filters["object_id"])
    if filters.get("outcome"):
        queryset = queryset.filter(outcome=filters["outcome"])
    if filters.get("correlation_id"):
        queryset = queryset.filter(correlation_id=filters["correlation_id"])
    subject = _subject_filter(filters)
    if subject is not None:
        queryset = queryset.filter(subject)
    text = (filters.get("q") or "").strip()
    if text:
        # Non-content fields only: what happened to what, by whom, from where.
        queryset = queryset.filter(
            Q(action__icontains=text) | Q(object_type__icontains=text) | Q(object_id=text)
            | Q(object_repr__icontains=text) | Q(actor_email__icontains=text) | Q(remote_addr__startswith=text)
            | Q(correlation_id=text)
        )
    return queryset


def _subject_filter(filters: dict) -> Q | None:
    """"Changes to this user / role / company": entries whose object is the member (its
    membership or its account), the role or the company (ids of the entries' tenant)."""
    conditions = []
    if filters.get("user"):
        conditions.append(Q(object_type="membership", object_id=str(filters["user"])))
        # Its account's own entries (security events): only entries of this tenant's chain are read.
        # unscoped(): the membership is read in the entry's own tenant (OuterRef), never another.
        accounts = Membership.objects.unscoped().filter(pk=filters["user"], tenant_id=OuterRef("tenant_id")).annotate(
            user_text=Cast("user_id", output_field=CharField())
        ).values("user_text")
        conditions.append(Q(object_type="user", object_id__in=Subquery(accounts)))
    if filters.get("role"):
        conditions.append(Q(object_type="role", object_id=str(filters["role"])))
    if filters.get("company"):
        conditions.append(Q(object_type="company", object_id=str(filters["company"])))
    if not conditions:
        return None
    combined = conditions[0]
    for condition in conditions[1:]:
        combined |= condition
    return combined


@dataclass(frozen=True)
class KeysetPage:
    entries: list[AuditEntry]
    older: int | None  # cursor (id) of the next page back in time, if any
    newer: int | None  # cursor (id) of the page before this one, if any


def entry_cursor(value) -> int | None:
    """An entry id from a query parameter (a positive integer), else None."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**62 else None


def audit_page(queryset: QuerySet[AuditEntry], *, before=None, after=None, size: int = PAGE_SIZE) -> KeysetPage:
    """One page newest first: entries older than `before`, or the page just newer than `after`."""
    before, after = entry_cursor(before), entry_cursor(after)
    if after is not None and before is None:
        rows = list(queryset.filter(id__gt=after).order_by("id")[: size + 1])
        has_newer = len(rows) > size
        rows = rows[:size][::-1]
        return KeysetPage(rows, older=rows[-1].id if rows else None, newer=rows[0].id if rows and has_newer else None)
    if before is not None:
        queryset = queryset.filter(id__lt=before)
    rows = list(queryset.order_by("-id")[: size + 1])
    has_older = len(rows) > size
    rows = rows[:size]
    return KeysetPage(
        rows,
        older=rows[-1].id if rows and has_older else None,
        newer=rows[0].id if rows and before is not None else None,
    )


def audit_entry_get(*, tenant, entry_id) -> AuditEntry:
    """One entry of the tenant; missing and foreign answer alike."""
    entry = audit_entries(tenant=tenant).filter(pk=entry_cursor(entry_id) or 0).first()
    if entry is None:
        raise NotFound("Not found.")
    return entry


def audit_facets(queryset: QuerySet[AuditEntry]) -> dict[str, list[tuple[str, int]]]:
    """How many entries per action and per object type (and outcome) in `queryset`, most
    frequent first: the filters' choices with their counts. Three grouped reads on the tenant's
    indexes."""

    def counted(field: str) -> list[tuple[str, int]]:
        rows = queryset.order_by().values_list(field).annotate(count=Count("id")).order_by("-count", field)
        return [(value, count) for value, count in rows if value]

    return {"action": counted("action"), "object_type": counted("object_type"), "outcome": counted("outcome")}


# -- tamper evidence ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainReport:
    """The verification of one chain: how many sealed entries matched, the first broken
    link, and how many entries are not sealed yet (recorded, not yet chained)."""
    chain: str
    checked: int
    broken_seq: int | None = None
    broken_entry_id: int | None = None
    reason: str = ""
    unsealed: int = 0

    @property
    def ok(self) -> bool:
        return not self.reason


def audit_chain_verify(*, tenant_id: int | None) -> ChainReport:
    """Walk one chain's sealed entries from its retention checkpoint: every entry must follow
    the previous one in `seq`, link to its hash, and match its own; the last must be the
    chain head's. Entries not sealed yet are counted, not checked (`audit_seal` first to
    check everything committed).

    Reads in chunks (constant memory at any length).
    """
    key = chain_key(tenant_id)
    head = AuditChainHead.objects.filter(chain=key).first()
    chain = AuditEntry.objects.for_chain(tenant_id)
    unsealed = chain.filter(seq__isnull=True).count()
    expected_seq = (head.purged_through_seq if head else 0) + 1
    expected_prev = head.purged_last_hash if head else GENESIS_HASH
    checked = 0
    rows = chain.filter(seq__isnull=False).order_by("seq").values("id", "hash", *HASHED_FIELDS).iterator(chunk_size=5000)
    for row in rows:
        reason = ""
        if row["seq"] > expected_seq:
            reason = f"entries {expected_seq}..{row['seq'] - 1} are missing"
        elif row["seq"] < expected_seq:
            reason = "entry out of sequence (duplicate, or before the retention checkpoint)"
        elif row["prev_hash"] != expected_prev:
            reason = "does not link to the previous entry's hash"
        elif entry_hash(row) != row["hash"]:
            reason = "content does not match its hash (altered)"
        if reason:
            return ChainReport(key, checked, row["seq"], row["id"], reason, unsealed)
        expected_seq, expected_prev, checked = expected_seq + 1, row["hash"], checked + 1
    if head is None:
        return ChainReport(key, checked, None, None, "chain head is missing" if checked else "", unsealed)
    if head.seq != expected_seq - 1 or head.hash != expected_prev:
        return ChainReport(key, checked, expected_seq, None,
                           f"chain ends at entry {expected_seq - 1} but its head records entry {head.seq} "
                           "(entries removed from the end, or the head altered)", unsealed)
    return ChainReport(key, checked, unsealed=unsealed)


def audit_chains_unsealed(*, since=None) -> list[int | None]:
    """The chains holding entries not sealed yet (None: the platform chain); with `since`, only
    entries created since then count (on PostgreSQL, only those months' partitions are read)."""
    # across_tenants(): the sealer's work list spans every chain (no entry content is read).
    unsealed = AuditEntry.objects.across_tenants().filter(seq__isnull=True)
    if since is not None:
        unsealed = unsealed.filter(created_at__gte=since)
    return list(unsealed.order_by().values_list("tenant_id", flat=True).distinct())


def audit_chains_to_verify(*, tenant=None) -> list[int | None]:
    """The chains `audit_verify` checks: one tenant's, or every tenant's and the platform's
    (including chains of tenants since deleted, and chains not sealed yet)."""
    if tenant is not None:
        return [tenant.pk]
    ids = set(Tenant.objects.values_list("pk", flat=True))
    ids |= set(AuditChainHead.objects.exclude(tenant_id=None).values_list("tenant_id", flat=True))
    ids |= {tenant_id for tenant_id in audit_chains_unsealed() if tenant_id is not None}
    return [None, *sorted(ids)]


# -- across tenants (platform auditors) -----------------------------------------------------------

def is_platform_auditor(user) -> bool:
    """Operators and granted platform auditors may read every tenant's log."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_platform_operator or PlatformAuditor.objects.filter(user=user).exists()


def audit_entries_across_tenants(*, tenant_slug: str = "") -> tuple[QuerySet[AuditEntry], object]:
    """Every chain's entries, or one tenant's (`tenant_slug`), or the platform chain's
    (`tenant_slug` = "platform"); with the tenant named, or None. Unknown slug: NotFound."""
    if not tenant_slug:
        # across_tenants(): the platform auditor's view over every chain (callers check the grant).
        return AuditEntry.objects.across_tenants().select_related("tenant"), None
    if tenant_slug == "platform":
        return AuditEntry.objects.platform_chain(), None
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        raise NotFound("Not found.")
    return AuditEntry.objects.for_tenant(tenant).select_related("tenant"), tenant

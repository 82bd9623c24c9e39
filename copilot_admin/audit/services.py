"""Writes to the audit log: recording inside the caller's transaction, and sealing.

Recording is explicit: a service records its own change or event, with the actor and the
tenant it was given, in the same database transaction as the change, so a change without
its entry cannot commit. `audit_change_record` records a model change (field diffs by
django-auditlog's field values), `audit_m2m_change_record` a many-to-many change,
`audit_event_record` an event (security events, copilot calls, exports, purges), and
`queryset_update_audited` runs a bulk `UPDATE` with one entry. Who acted is the `actor`
argument, never a context variable; the client address, the correlation id and the channel
come from the request or task in progress (`copilot_admin.core.context`).

Entries are appended unsealed and without any lock. `audit_seal` links the committed entries
of a chain into its hash chain, in batches, under a lock that only the sealer takes (a
periodic task, and on demand before verification and export), so no request waits on a
per-tenant lock and concurrent writers never fork or reorder a chain.
"""

import copy
import logging
from datetime import timedelta

from auditlog.diff import get_field_value
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from copilot_admin.audit.chain import HASHED_FIELDS, entry_hash, json_safe
from copilot_admin.audit.checkpoints import checkpoint_record
from copilot_admin.audit.export import ExportFormat, export_stream
from copilot_admin.audit.models import (
    RAW_CHANGES_KEY,
    ActorType,
    AuditChainHead,
    AuditEntry,
    Outcome,
    PlatformAuditor,
    chain_key,
)
from copilot_admin.audit.selectors import (
    audit_chains_to_verify,
    audit_chains_unsealed,
    audit_entries,
    audit_entries_across_tenants,
    audit_entries_filter,
)
from copilot_admin.core.client_ip import client_ip
from copilot_admin.core.context import client_request_id as _client_request_id
from copilot_admin.core.context import current_scope, request_correlation_id
from copilot_admin.core.errors import ApplicationError, PermissionRefused
from copilot_admin.core.inserts import OneStatement, RowInsert
from tenants.selectors import memberships_of_user

logger = logging.getLogger(__name__)

# What a copilot call's entry may carry: metadata, never content (no prompt, ticket text or
# completion). Other keys are dropped; strings are cut short.
COPILOT_METADATA_KEYS = frozenset({
    "feature", "zone", "deployment", "outcome", "code", "error_code", "status", "http_status",
    "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "request_id", "upstream_request_id",
    "company", "company_id", "membership_id", "user_type", "stage", "categories", "retry_after",
    "attempts", "api_version", "model", "template_version", "prompt_version", "estimated_tokens",
    "client_request_id", "integration_key",
})
_MAX_METADATA_STRING = 128


def _clip(value: str, limit: int) -> str:
    value = "" if value is None else str(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _copilot_metadata(metadata: dict) -> dict:
    kept, dropped = {}, []
    for key, value in metadata.items():
        if key not in COPILOT_METADATA_KEYS:
            dropped.append(key)
        elif isinstance(value, str):
            kept[key] = _clip(value, _MAX_METADATA_STRING)
        elif isinstance(value, (list, tuple)):
            kept[key] = [_clip(v, _MAX_METADATA_STRING) if isinstance(v, str) else v for v in value[:20]]
        elif value is None or isinstance(value, (bool, int, float)):
            kept[key] = value
        else:
            dropped.append(key)
    if dropped:
        logger.warning("copilot.call audit metadata keys dropped (not metadata): %s", ", ".join(sorted(dropped)))
    return kept


def _actor_fields(actor, actor_type: str | None) -> tuple[int | None, str, str]:
    """(actor id, e-mail snapshot, actor type) for a user, a membership or None (the system)."""
    user = actor.user if hasattr(actor, "user") and hasattr(actor, "tenant_id") else actor  # a membership
    if user is None or not getattr(user, "is_authenticated", False):
        return None, "", actor_type or ActorType.SYSTEM
    default_type = ActorType.OPERATOR if user.is_platform_operator else ActorType.USER
    return user.pk, (user.email or "").lower(), actor_type or default_type


# -- appending ---------------------------------------------------------------------------------


_ENTRY_INSERT = RowInsert(AuditEntry, prefix="entry_")


def entry_append(
    *,
    tenant_id: int | None,
    actor_id: int | None,
    actor_email: str,
    actor_type: str,
    action: str,
    object_type: str = "",
    object_id="",
    object_repr: str = "",
    changes: dict | None = None,
    metadata: dict | None = None,
    outcome: str = Outcome.SUCCESS,
    remote_addr: str | None = "",
    correlation_id: str = "",
    content_type_id: int | None = None,
    statement: OneStatement | None = None,
) -> AuditEntry:
    """Append one unsealed entry to its chain (the tenant's, or the platform chain for None),
    in the caller's transaction. Takes no lock: the sealer numbers and chains it once it is
    committed. With `statement` (`core.inserts.OneStatement`), the entry is a part of the
    caller's statement instead, written (and saved) when the caller executes it.

    The row is inserted without model signals, so nothing (django-auditlog's actor context
    included) can change who or what is recorded.
    """
    entry = AuditEntry(
        tenant_id=tenant_id,
        created_at=timezone.now(),
        actor_id=actor_id,
        actor_email=_clip(actor_email, 254),
        actor_type=actor_type,
        remote_addr=_clip(remote_addr or "", 64),
        action=_clip(action, 64),
        content_type_id=content_type_id,
        object_type=_clip(object_type, 64),
        object_id=_clip(object_id if object_id is not None else "", 64),
        object_repr=_clip(object_repr, 255),
        changes=json_safe(changes),
        metadata=json_safe(metadata),
        outcome=outcome,
        correlation_id=_clip(correlation_id or "", 64),
    )
    # One precompiled INSERT, without model signals (an insert names its chain itself).
    # Tasks run in-process without a broker (so no beat): then seal right after the commit.
    seal = settings.AUDIT_SEAL_ON_COMMIT
    if statement is not None:
        statement.insert(_ENTRY_INSERT, entry)
        if seal:
            statement.on_commit(lambda: audit_seal(tenant_id=tenant_id))
    else:
        _ENTRY_INSERT.insert(entry)
        if seal:
            transaction.on_commit(lambda: audit_seal(tenant_id=tenant_id), robust=True)
    return entry


def audit_event_record(
    *,
    tenant,
    actor,
    action: str,
    object_type: str = "",
    object_id="",
    object_repr: str = "",
    outcome: str = Outcome.SUCCESS,
    metadata: dict | None = None,
    changes: dict | None = None,
    request=None,
    remote_addr: str | None = None,
    correlation_id: str | None = None,
    actor_type: str | None = None,
    client_request_id: str | None = None,
    content_type_id: int | None = None,
    statement: OneStatement | None = None,
) -> AuditEntry:
    """Record one event in `tenant`'s chain (a tenant or its id; None: the platform chain).

    `actor` is a user, a membership, or None for the system; it is what gets recorded,
    whatever actor a request, task or shell has set elsewhere. The client address, the
    correlation id and the client's own request id (`metadata.client_request_id`) come from
    `request` when given, else from the request or task in progress. For `copilot.call`,
    `metadata` keeps only metadata keys (never content). `statement`: as for `entry_append`.
    """
    actor_id, actor_email, actor_type = _actor_fields(actor, actor_type)
    metadata = dict(metadata or {})
    if action == "copilot.call":
        metadata = _copilot_metadata(metadata)
    scope = current_scope()
    if scope.channel and "via" not in metadata:
        metadata["via"] = scope.channel
    if remote_addr is None:
        remote_addr = (client_ip(request) if request is not None else None) or scope.remote_addr
    if correlation_id is None:
        correlation_id = request_correlation_id(request) if request is not None else scope.correlation_id
    if client_request_id is None:
        client_request_id = _client_request_id(request) if request is not None else scope.client_request_id
    if client_request_id and "client_request_id" not in metadata:
        metadata["client_request_id"] = client_request_id
    return entry_append(
        tenant_id=getattr(tenant, "pk", tenant),
        actor_id=actor_id,
        actor_email=actor_email,
        actor_type=actor_type,
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        changes=changes,
        metadata=metadata,
        outcome=outcome,
        remote_addr=remote_addr,
        correlation_id=correlation_id,
        content_type_id=content_type_id,
        statement=statement,
    )


def audit_event_record_for_user_tenants(*, user, **fields) -> list[AuditEntry]:
    """Record a security event of an account (a login, a failed login, a token, a lockout) in
    the platform chain and in the chain of every tenant where the account is an accepted,
    active member, so those tenants' auditors see it; never in a tenant that merely invited
    the account or deactivated its membership."""
    tenant_ids = sorted({m.tenant_id for m in memberships_of_user(user=user)}) if user is not None else []
    return [audit_event_record(tenant=tenant_id, **fields) for tenant_id in [None, *tenant_ids]]


# -- model changes -----------------------------------------------------------------------------

# Model label -> the object type entries show (and filters use).
OBJECT_TYPES = {
    "tenants.tenant": "tenant",
    "tenants.user": "user",
    "tenants.clientcompany": "company",
    "tenants.membership": "membership",
    "access.securityrole": "role",
    "regions.datazone": "zone",
    "regions.azuredeployment": "deployment",
    "usage.platformlimitpolicy": "platform_limits",
    "usage.tenantlimitpolicy": "limits",
    "usage.copilotaccess": "copilot_access",
    "usage.abusecase": "abuse_case",
    "usage.limitwarning": "limit_warning",
    "identity.ssoconfiguration": "sso",
    "identity.ssodomain": "sso_domain",
}


class ChangeVerb:
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


def object_type_of(model) -> str:
    return OBJECT_TYPES.get(model._meta.label_lower, model._meta.model_name)


def audit_snapshot(instance):
    """A copy of `instance` as it is now: the `before` of `audit_change_record`. Take it right
    after reading (and locking) the row, before changing anything."""
    return copy.deepcopy(instance)


def excluded_fields_of(model) -> frozenset[str]:
    """Fields never recorded: the model's `AUDIT_EXCLUDED_FIELDS` (secrets such as password
    hashes, bookkeeping that changes on every use, what another tenant may not learn)."""
    return frozenset(getattr(model, "AUDIT_EXCLUDED_FIELDS", ()))


ON, OFF = "on", "off"


def readable_name(obj) -> str:
    """How an entry names a related object: a user or a membership by its e-mail, anything
    else by its own name (`str`)."""
    if obj is None:
        return None
    if obj._meta.label_lower == "tenants.membership":
        return (obj.user.email or "").lower()
    email = getattr(obj, "email", None)
    if isinstance(email, str) and email:
        return email.lower()
    return str(obj)


def readable_field_value(instance, field):
    """The value of `field` on `instance` as a reader wants it, at this moment: a related
    object by its name, a choice by its label, a boolean as on/off; None for a missing side
    (or an empty relation)."""
    if instance is None:
        return None
    if field.is_relation and (field.many_to_one or field.one_to_one):
        if getattr(instance, field.attname) is None:
            return None
        return readable_name(getattr(instance, field.name))
    value = getattr(instance, field.attname)
    if value is None:
        return None
    if isinstance(value, bool):
        return ON if value else OFF
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, dict):  # switches by name: {"summarize": "on", ...}
        return {key: (ON if item else OFF) if isinstance(item, bool) else item for key, item in sorted(value.items())}
    if isinstance(value, list):
        return value
    return str(get_field_value(instance, field))


def field_changes(before, after) -> tuple[dict, dict]:
    """({field: [before, after]} readable, {field: [before, after]} raw) for the concrete
    fields whose value differs; the model's excluded fields never appear.

    The raw pair is django-auditlog's representation (`auditlog.diff.get_field_value`: text; a
    related object by its id; "None" for a missing side). The readable pair names what a
    reader needs at the time of the change (`readable_field_value`: a role by its name, a user
    by its e-mail, a choice by its label, a boolean as on/off); the raw pair is kept only
    where it differs from the readable one.

    (`auditlog.diff.model_instance_diff` reads its options from django-auditlog's registry,
    which holds no model here: nothing is recorded by its signals.)"""
    model = type(after if after is not None else before)
    excluded = excluded_fields_of(model)
    changes, raw = {}, {}
    for field in model._meta.concrete_fields:
        if field.name in excluded:
            continue
        old, new = get_field_value(before, field), get_field_value(after, field)
        if old == new:
            continue
        pair = [str(old), str(new)]
        readable = [readable_field_value(before, field), readable_field_value(after, field)]
        changes[field.name] = readable
        if readable != pair:
            raw[field.name] = pair
    return changes, raw


def audit_change_record(
    *, actor, tenant, instance, before=None, deleted: bool = False, action: str | None = None,
    metadata: dict | None = None,
) -> AuditEntry | None:
    """Record a change of a model instance, with `actor` (a user, a membership, or None for
    the system), in `tenant`'s chain (a tenant or its id; None: the platform chain). Call it
    inside the change's transaction: the entry commits or rolls back with the change.

    `before` is the instance's `audit_snapshot` taken before the change (None: it was just
    created); with `deleted`, record before calling `delete()`. The entry's action is
    `<object type>.<create|update|delete>` unless `action` names another. An update that
    changed no recorded field records nothing (returns None).

    `changes` holds readable values (names at the time of the change, labels, on/off) and
    `metadata["raw"]` the raw ones where they differ (ids, codes): see `field_changes`.
    """
    model = type(instance)
    if deleted:
        verb, (changes, raw) = ChangeVerb.DELETE, field_changes(instance, None)
    elif before is None:
        verb, (changes, raw) = ChangeVerb.CREATE, field_changes(None, instance)
    else:
        verb, (changes, raw) = ChangeVerb.UPDATE, field_changes(before, instance)
        if not changes:
            return None
    object_type = object_type_of(model)
    return audit_event_record(
        tenant=tenant, actor=actor, action=action or f"{object_type}.{verb}", object_type=object_type,
        object_id=instance.pk, object_repr=readable_name(instance), changes=changes,
        metadata={**(metadata or {}), RAW_CHANGES_KEY: raw},
        content_type_id=ContentType.objects.get_for_model(model).pk,
    )


def audit_m2m_change_record(
    *, actor, tenant, instance, field: str, before, after, action: str | None = None,
) -> list[AuditEntry]:
    """Record a change of `instance`'s many-to-many `field` from the objects `before` to the
    objects `after`: one entry for those removed, one for those added, each as
    `{field: {"type": "m2m", "operation": "delete"|"add", "objects": [names]}}` (django-auditlog's
    form)."""
    before, after = {obj.pk: obj for obj in before}, {obj.pk: obj for obj in after}
    model = type(instance)
    object_type = object_type_of(model)
    recorded = []
    for operation, objects in (
        ("delete", [before[pk] for pk in sorted(set(before) - set(after))]),
        ("add", [after[pk] for pk in sorted(set(after) - set(before))]),
    ):
        if objects:
            recorded.append(audit_event_record(
                tenant=tenant, actor=actor, action=action or f"{object_type}.{ChangeVerb.UPDATE}",
                object_type=object_type, object_id=instance.pk, object_repr=readable_name(instance),
                changes={field: {"type": "m2m", "operation": operation,
                                 "objects": [readable_name(obj) for obj in objects]}},
                metadata={RAW_CHANGES_KEY: {field: {"operation": operation, "ids": [obj.pk for obj in objects]}}},
                content_type_id=ContentType.objects.get_for_model(model).pk,
            ))
    return recorded


# -- bulk changes --------------------------------------------------------------------------

_BULK_IDS_KEPT = 1000


@transaction.atomic
def queryset_update_audited(
    *, queryset: QuerySet, tenant, actor, action: str, values: dict, request=None
) -> int:
    """`queryset.update(**values)` with one entry recording which rows changed and how.

    The entry lists the ids (the first thousand, and the count) and, per field, the distinct
    values before and the value after.
    """
    fields = list(values)
    rows = list(queryset.select_for_update().order_by("pk").values("pk", *fields))
    ids = [row["pk"] for row in rows]
    changed = queryset.filter(pk__in=ids).update(**values) if ids else 0
    before = {field: sorted({str(row[field]) for row in rows}) for field in fields}
    audit_event_record(
        tenant=tenant,
        actor=actor,
        action=action,
        object_type=object_type_of(queryset.model),
        object_id="*",
        object_repr=f"{changed} {queryset.model._meta.verbose_name_plural}",
        changes={field: [before[field], str(value)] for field, value in values.items()},
        metadata={"bulk": True, "count": changed, "ids": ids[:_BULK_IDS_KEPT], "ids_truncated": len(ids) > _BULK_IDS_KEPT},
        request=request,
    )
    return changed


# -- sealing ---------------------------------------------------------------------------------------

EVERY_CHAIN = "every chain"  # audit_seal(tenant_id=EVERY_CHAIN): each chain with unsealed entries


def _lock_head(tenant_id: int | None) -> AuditChainHead:
    """The chain's head row, locked until the transaction ends (created on first use). Only
    the sealer and the retention operations take this lock; writers never do."""
    key = chain_key(tenant_id)
    head = AuditChainHead.objects.select_for_update().filter(chain=key).first()
    if head is None:
        # First seal of this chain: create the head once (a concurrent creator wins
        # silently), then lock it like every other sealer.
        AuditChainHead.objects.bulk_create([AuditChainHead(chain=key, tenant_id=tenant_id)], ignore_conflicts=True)
        head = AuditChainHead.objects.select_for_update().get(chain=key)
    return head


def _seal_batch(tenant_id: int | None, batch_size: int, since=None) -> int:
    """Seal up to `batch_size` of the chain's committed, unsealed entries (created at or after
    `since`, when given), oldest id first, in one transaction under the chain's lock. Returns
    how many."""
    with transaction.atomic():
        head = _lock_head(tenant_id)
        # Read after the lock: a sealer that held it before us has committed, so this sees
        # its work, and every entry committed so far.
        unsealed = AuditEntry.objects.for_chain(tenant_id).filter(seq__isnull=True)
        if since is not None:
            unsealed = unsealed.filter(created_at__gte=since)  # only the recent months' partitions
        rows = list(unsealed.order_by("id").values("id", *HASHED_FIELDS)[:batch_size])
        if not rows:
            return 0
        seq, previous, sealed = head.seq, head.hash, []
        for row in rows:
            seq += 1
            row["seq"], row["prev_hash"] = seq, previous
            previous = entry_hash(row)
            sealed.append((row["id"], seq, row["prev_hash"], previous))
        _seals_write(sealed)
        head.seq, head.hash = seq, previous
        head.save(update_fields=["seq", "hash"])
        checkpoint_record(tenant_id=tenant_id, sequence=seq, head_hash=previous, at=timezone.now())
    return len(rows)


def _seals_write(sealed: list[tuple[int, int, str, str]]) -> None:
    """Write a batch's seals, `(id, seq, prev_hash, hash)` per entry, rows of the chain read
    under its lock, updated by id. On PostgreSQL one UPDATE joined to the batch as arrays
    (`bulk_update` compiles a CASE of every row per field: three quarters of a batch's CPU,
    and a quadratic CASE for the database); elsewhere `bulk_update`."""
    if connection.vendor != "postgresql":
        AuditEntry.unscoped_objects.bulk_update(
            [AuditEntry(id=id_, seq=seq, prev_hash=prev_hash, hash=hash_) for id_, seq, prev_hash, hash_ in sealed],
            ["seq", "prev_hash", "hash"],
        )
        return
    ids, seqs, prev_hashes, hashes = (list(column) for column in zip(*sealed, strict=True))
    table = connection.ops.quote_name(AuditEntry._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS entry SET seq = batch.seq, prev_hash = batch.prev_hash, hash = batch.hash "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[]) AS batch(id, seq, prev_hash, hash) "
            "WHERE entry.id = batch.id",
            [ids, seqs, prev_hashes, hashes],
        )
        if cursor.rowcount != len(sealed):  # never: the rows were read under the chain's lock
            raise RuntimeError(f"Sealing updated {cursor.rowcount} of {len(sealed)} entries.")


def audit_seal(*, tenant_id=EVERY_CHAIN, batch_size: int | None = None, since=None) -> int:
    """Link the committed, unsealed entries of one chain (a tenant's id; None: the platform
    chain), or of every chain, into their hash chains. Returns how many entries it sealed.

    With `since` (a moment), only entries created since then are looked at, so on PostgreSQL
    only the partitions of those months are read: the periodic sealer looks back
    AUDIT_SEAL_WINDOW_HOURS, and the hourly maintenance seals without a bound, so an entry
    whose transaction outlasted the window is sealed within the hour (later in its chain than
    entries that committed before it was visible, as always).

    Entries are sealed in the order they became visible to the sealer (by id within one
    batch): an entry that commits later is sealed later, even when its id is lower, so a
    sealed chain is never reordered or forked. Each batch is its own transaction under the
    chain's lock, so a sealer never holds it long; concurrent sealers of one chain take
    turns. Safe to run any time, and twice.
    """
    batch_size = batch_size or settings.AUDIT_SEAL_BATCH_SIZE
    chains = audit_chains_unsealed(since=since) if tenant_id == EVERY_CHAIN else [tenant_id]
    total = 0
    for chain in chains:
        while True:
            sealed = _seal_batch(chain, batch_size, since)
            total += sealed
            if sealed < batch_size:
                break
    return total


# -- export ------------------------------------------------------------------------------------


def audit_export_open(*, tenant, actor, filters: dict, fmt: str, request=None):
    """Start an export of `tenant`'s entries matching `filters`: record it (exports are
    audited), then return (filename, content type, stream of bytes).

    The export holds the entries sealed before its own entry: it records itself, seals the
    chain (its own entry with everything committed before it) and streams what precedes it.
    """
    recorded_filters = {name: (value.isoformat() if hasattr(value, "isoformat") else value)
                        for name, value in filters.items()}
    with transaction.atomic():
        entry = audit_event_record(
            tenant=tenant, actor=actor, action="audit.export", object_type="audit", object_id=tenant.slug,
            object_repr=f"Audit log of {tenant.name}", request=request,
            metadata={"format": fmt, "filters": recorded_filters},
        )
    audit_seal(tenant_id=tenant.pk)
    entry.refresh_from_db(fields=["seq"])
    queryset = audit_entries_filter(audit_entries(tenant=tenant).filter(seq__lt=entry.seq), filters=filters)
    filename = f"audit-{tenant.slug}-{entry.created_at:%Y%m%dT%H%M%SZ}.{fmt}"
    return filename, ExportFormat.CONTENT_TYPES[fmt], export_stream(queryset, fmt)


def audit_export_across_open(*, actor, filters: dict, fmt: str, request=None):
    """Start an export across tenants for a platform auditor or operator (the caller checks
    the grant): every chain's entries, or one tenant's (`filters["tenant"]`: a slug, or
    `platform`), matching `filters`. Recorded in the platform chain and, for one tenant, in
    that tenant's chain too (its auditors see who exported it); then (filename, content type,
    stream of bytes), each row naming its tenant.

    The export holds what was sealed before it started: it seals the chains it reads first.
    """
    filters = dict(filters)
    tenant_slug = filters.pop("tenant", "")
    queryset, tenant = audit_entries_across_tenants(tenant_slug=tenant_slug)
    recorded_filters = {name: (value.isoformat() if hasattr(value, "isoformat") else value)
                        for name, value in filters.items()}
    metadata = {"format": fmt, "filters": recorded_filters, "tenant": tenant_slug or "*"}
    with transaction.atomic():
        entry = audit_event_record(
            tenant=None, actor=actor, action="audit.platform_export", object_type="audit",
            object_id=tenant_slug or "*", object_repr="Audit log of " + (tenant.name if tenant else "every tenant"),
            request=request, metadata=metadata,
        )
        if tenant is not None:
            audit_event_record(
                tenant=tenant, actor=actor, action="audit.platform_export", object_type="audit",
                object_id=tenant.slug, object_repr=f"Audit log of {tenant.name}", request=request, metadata=metadata,
            )
    audit_seal(tenant_id=EVERY_CHAIN if tenant is None and tenant_slug != "platform" else
               (tenant.pk if tenant is not None else None))
    # What was recorded before this export started, sealed (this export's own entries excluded).
    queryset = audit_entries_filter(queryset.filter(id__lt=entry.id, seq__isnull=False), filters=filters)
    scope = tenant.slug if tenant is not None else (tenant_slug or "all")
    filename = f"audit-{scope}-{entry.created_at:%Y%m%dT%H%M%SZ}.{fmt}"
    return filename, ExportFormat.CONTENT_TYPES[fmt], export_stream(queryset, fmt)


# -- retention ---------------------------------------------------------------------------------

PURGE_SETTING = "copilot_admin.audit_purge"  # the PostgreSQL trigger lets DELETE through only with it on


def audit_retention_days(*, tenant_id: int | None) -> int:
    """How long the chain keeps its entries: its own period or the platform default, never
    below the platform minimum."""
    own = AuditChainHead.objects.filter(chain=chain_key(tenant_id)).values_list("retention_days", flat=True).first()
    return max(own or settings.AUDIT_RETENTION_DEFAULT_DAYS, settings.AUDIT_RETENTION_MIN_DAYS)


@transaction.atomic
def audit_retention_set(*, actor, tenant, days: int | None) -> int:
    """Set the tenant's retention period (None: the platform default). Platform operators
    only; never below the platform minimum. Recorded in the tenant's log."""


    if actor is not None and not getattr(actor, "is_platform_operator", False):
        raise PermissionRefused("Only platform operators set audit retention.")
    if days is not None and days < settings.AUDIT_RETENTION_MIN_DAYS:
        raise ApplicationError(
            f"Audit entries are kept at least {settings.AUDIT_RETENTION_MIN_DAYS} days.",
            code="retention_below_minimum", fields={"days": ["below the platform minimum"]},
        )
    head = _lock_head(tenant.pk)
    before = head.retention_days
    head.retention_days = days
    head.save(update_fields=["retention_days"])
    audit_event_record(
        tenant=tenant, actor=actor, action="audit.retention_update", object_type="audit", object_id=tenant.slug,
        object_repr=f"Audit log of {tenant.name}", changes={"retention_days": [before, days]},
    )
    return audit_retention_days(tenant_id=tenant.pk)


def _purge_allowed(on: bool) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, %s, true)", [PURGE_SETTING, "on" if on else "off"])


def audit_purge_expired(*, tenant_id: int | None, now=None, batch_size: int | None = None) -> int:
    """Delete the chain's entries older than its retention period, oldest first, in batches
    (each its own transaction under the chain lock, so the sealer waits one batch at most).

    Only a prefix of the chain is ever removed; the chain head keeps the last removed
    entry's seq and hash as checkpoint, so what remains still verifies. Returns how many
    entries were removed; a purge that removed any is itself recorded."""


    batch_size = batch_size or settings.AUDIT_PURGE_BATCH_SIZE
    days = audit_retention_days(tenant_id=tenant_id)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    audit_seal(tenant_id=tenant_id)  # only sealed entries are removed: the chain's prefix
    if not AuditChainHead.objects.filter(chain=chain_key(tenant_id)).exists():
        return 0
    removed, through = 0, None
    while True:
        with transaction.atomic():
            head = _lock_head(tenant_id)
            # Only entries older than the cutoff are read (on PostgreSQL: only the partitions of
            # the months before it). The chain's prefix is what is removed: the run of
            # consecutive seqs from the checkpoint on; the first seq missing from the rows read
            # is an entry not expired yet, and the purge stops before it.
            batch = list(
                AuditEntry.objects.for_chain(tenant_id)
                .filter(seq__gt=head.purged_through_seq, created_at__lt=cutoff).order_by("seq")
                .values("id", "seq", "hash", "created_at")[:batch_size]
            )
            expired = []
            for position, row in enumerate(batch, start=head.purged_through_seq + 1):
                if row["seq"] != position:
                    break
                expired.append(row)
            if not expired:
                break
            _purge_allowed(True)
            AuditEntry.objects.for_chain(tenant_id).filter(id__in=[row["id"] for row in expired]).delete()
            _purge_allowed(False)
            head.purged_through_seq, head.purged_last_hash = expired[-1]["seq"], expired[-1]["hash"]
            head.save(update_fields=["purged_through_seq", "purged_last_hash"])
            removed, through = removed + len(expired), expired[-1]["seq"]
        if len(expired) < batch_size:
            break
    if removed:
        audit_event_record(
            tenant=tenant_id, actor=None, action="audit.purge", object_type="audit",
            object_repr=f"{removed} entries older than {days} days",
            metadata={"removed": removed, "through_seq": through, "retention_days": days, "cutoff": cutoff.isoformat()},
        )
    return removed


def audit_purge_all_expired(*, now=None) -> dict[str, int]:
    """Run the retention purge over every chain. Idempotent: a second run removes nothing."""
    return {chain_key(tenant_id): audit_purge_expired(tenant_id=tenant_id, now=now)
            for tenant_id in audit_chains_to_verify()}


# -- platform auditors ---------------------------------------------------------------------------


@transaction.atomic
def platform_auditor_grant(*, actor, user) -> None:
    """Let `user` read every tenant's audit log. Platform operators only (None: a command
    run on the server); recorded in the platform chain."""
    if actor is not None and not getattr(actor, "is_platform_operator", False):
        raise PermissionRefused("Only platform operators grant platform audit access.")
    _, created = PlatformAuditor.objects.get_or_create(user=user, defaults={"granted_by": actor})
    if created:
        audit_event_record(tenant=None, actor=actor, action="audit.platform_auditor_grant", object_type="user",
                           object_id=user.pk, object_repr=user.email)


@transaction.atomic
def platform_auditor_revoke(*, actor, user) -> None:
    if actor is not None and not getattr(actor, "is_platform_operator", False):
        raise PermissionRefused("Only platform operators revoke platform audit access.")
    deleted, _ = PlatformAuditor.objects.filter(user=user).delete()
    if deleted:
        audit_event_record(tenant=None, actor=actor, action="audit.platform_auditor_revoke", object_type="user",
                           object_id=user.pk, object_repr=user.email)


def audit_platform_view_record(*, request, tenant, filters: dict) -> None:
    """A platform auditor or operator read the log across tenants: recorded in the chain of
    the tenant it looked at (its auditors see it), or the platform's for all tenants."""
    audit_event_record(
        tenant=tenant, actor=request.user, action="audit.platform_view", object_type="audit",
        object_id=tenant.slug if tenant is not None else "*", request=request,
        metadata={"filters": {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in filters.items()}},
    )

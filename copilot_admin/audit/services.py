"""Writes to the audit log. Entries are only ever appended, through `entry_append`.

`audit_event_record` records one event (security events, copilot calls, exports, purges);
`audit_record_from_logentry` turns each django-auditlog `LogEntry` (a registered model's
field changes, with the actor django-auditlog attributed) into an entry;
`queryset_update_audited` is the way to run a bulk `UPDATE`, which no signal sees.

An entry is written in the caller's transaction (it disappears with a change that is rolled
back) under a lock on its chain's head row, so concurrent writers of one chain queue up and
the chain never forks.
"""

import logging
from contextvars import ContextVar

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from copilot_admin.audit.chain import entry_hash, json_safe
from copilot_admin.audit.models import ActorType, AuditChainHead, AuditEntry, Outcome, chain_key
from copilot_admin.core.context import Channel, current_scope, request_correlation_id
from copilot_admin.core.context import client_request_id as _client_request_id

logger = logging.getLogger(__name__)

# What a copilot call's entry may carry: metadata, never content (no prompt, ticket text or
# completion). Other keys are dropped; strings are cut short.
COPILOT_METADATA_KEYS = frozenset({
    "feature", "zone", "deployment", "outcome", "code", "error_code", "status", "http_status",
    "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "request_id", "upstream_request_id",
    "company", "company_id", "membership_id", "user_type", "stage", "categories", "retry_after",
    "attempts", "api_version", "model", "template_version", "prompt_version", "estimated_tokens",
    "client_request_id",
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


def _context_remote_addr() -> str:
    """The client address django-auditlog's actor context holds for the request in progress
    (only inside one: that context is never reset, so outside it would be a stale address)."""
    from auditlog.context import auditlog_value

    if current_scope().channel not in (Channel.WEB, Channel.API):
        return ""
    try:
        return auditlog_value.get().get("remote_addr") or ""
    except LookupError:
        return ""


def _lock_head(tenant_id: int | None) -> AuditChainHead:
    key = chain_key(tenant_id)
    head = AuditChainHead.objects.select_for_update().filter(chain=key).first()
    if head is None:
        # First entry of this chain: create the head once (a concurrent creator wins
        # silently), then lock it like every other writer.
        AuditChainHead.objects.bulk_create([AuditChainHead(chain=key, tenant_id=tenant_id)], ignore_conflicts=True)
        head = AuditChainHead.objects.select_for_update().get(chain=key)
    return head


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
) -> AuditEntry:
    """Append one entry to its chain (the tenant's, or the platform chain for None)."""
    fields = {
        "tenant_id": tenant_id,
        "actor_id": actor_id,
        "actor_email": _clip(actor_email, 254),
        "actor_type": actor_type,
        "remote_addr": _clip(remote_addr or "", 64),
        "action": _clip(action, 64),
        "object_type": _clip(object_type, 64),
        "object_id": _clip(object_id if object_id is not None else "", 64),
        "object_repr": _clip(object_repr, 255),
        "changes": json_safe(changes),
        "metadata": json_safe(metadata),
        "outcome": outcome,
        "correlation_id": _clip(correlation_id or "", 64),
    }
    with transaction.atomic():
        head = _lock_head(tenant_id)
        fields.update(seq=head.seq + 1, prev_hash=head.hash, created_at=timezone.now())
        fields["hash"] = entry_hash(fields)
        entry = AuditEntry(**fields)
        entry.save(force_insert=True)
        head.seq, head.hash = entry.seq, entry.hash
        head.save(update_fields=["seq", "hash"])
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
) -> AuditEntry:
    """Record one event in `tenant`'s chain (None: the platform chain).

    `actor` is a user, a membership, or None for the system. The client address, the
    correlation id and the client's own request id (`metadata.client_request_id`) come from
    `request` when given, else from the request or task in progress. For `copilot.call`,
    `metadata` keeps only metadata keys (never content).
    """
    from copilot_admin.core.client_ip import client_ip

    actor_id, actor_email, actor_type = _actor_fields(actor, actor_type)
    metadata = dict(metadata or {})
    if action == "copilot.call":
        metadata = _copilot_metadata(metadata)
    scope = current_scope()
    if scope.channel and "via" not in metadata:
        metadata["via"] = scope.channel
    if remote_addr is None:
        remote_addr = (client_ip(request) if request is not None else None) or _context_remote_addr()
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
    )


def audit_event_record_for_user_tenants(*, user, **fields) -> list[AuditEntry]:
    """Record a security event of an account (a login, a failed login, a token, a lockout) in
    the platform chain and in the chain of every tenant where the account is an accepted,
    active member, so those tenants' auditors see it; never in a tenant that merely invited
    the account or deactivated its membership."""
    from tenants.selectors import memberships_of_user

    tenant_ids = sorted({m.tenant_id for m in memberships_of_user(user=user)}) if user is not None else []
    return [audit_event_record(tenant=tenant_id, **fields) for tenant_id in [None, *tenant_ids]]


# -- django-auditlog changes -------------------------------------------------------------

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
}
_VERBS = {0: "create", 1: "update", 2: "delete", 3: "access"}


def object_type_of(model) -> str:
    return OBJECT_TYPES.get(model._meta.label_lower, model._meta.model_name)


# The object django-auditlog is about to log: (model label, pk, its tenant id). Set by its
# pre_log signal, read when the LogEntry is saved (m2m changes have no pre_log).
_logged_object: ContextVar[tuple[str, str, int | None] | None] = ContextVar("audit_logged_object", default=None)


def logged_object_remember(instance) -> None:
    label = instance._meta.label_lower
    tenant_id = instance.pk if label == "tenants.tenant" else getattr(instance, "tenant_id", None)
    _logged_object.set((label, str(instance.pk), tenant_id))


def _tenant_id_of_logentry(log_entry, label: str) -> int | None:
    """The tenant whose chain gets the change: the object's own tenant (or the tenant itself),
    else the tenant its additional data names, else the tenant of the page or API in progress."""
    from tenants.models import Tenant

    if label == "tenants.tenant":
        return int(log_entry.object_pk)
    remembered = _logged_object.get()
    if remembered and remembered[:2] == (label, str(log_entry.object_pk)) and remembered[2] is not None:
        return remembered[2]
    slug = (log_entry.additional_data or {}).get("tenant") if isinstance(log_entry.additional_data, dict) else None
    scope_tenant = current_scope().tenant
    if slug:
        if scope_tenant is not None and scope_tenant.slug == slug:
            return scope_tenant.pk
        return Tenant.objects.filter(slug=slug).values_list("pk", flat=True).first()
    # An object of no tenant (a user account) changed inside a tenant's page or API.
    return scope_tenant.pk if scope_tenant is not None else None


def audit_record_from_logentry(log_entry) -> AuditEntry:
    """The entry for one django-auditlog LogEntry: same actor, address, object and changes."""
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_id(log_entry.content_type_id)
    label = f"{content_type.app_label}.{content_type.model}"
    model = content_type.model_class()
    object_type = object_type_of(model) if model is not None else content_type.model
    actor = log_entry.actor if log_entry.actor_id else None
    actor_id, actor_email, actor_type = _actor_fields(actor, None)
    scope = current_scope()
    metadata = {"log_entry": log_entry.pk}
    if scope.channel:
        metadata["via"] = scope.channel
    if scope.client_request_id:
        metadata["client_request_id"] = scope.client_request_id
    return entry_append(
        tenant_id=_tenant_id_of_logentry(log_entry, label),
        actor_id=actor_id,
        actor_email=actor_email or (log_entry.actor_email or ""),
        actor_type=actor_type,
        action=f"{object_type}.{_VERBS.get(log_entry.action, 'change')}",
        object_type=object_type,
        object_id=log_entry.object_pk,
        object_repr=log_entry.object_repr or "",
        changes=log_entry.changes if isinstance(log_entry.changes, dict) else {},
        metadata=metadata,
        remote_addr=log_entry.remote_addr or "",
        correlation_id=scope.correlation_id or (log_entry.cid or ""),
    )


# -- bulk changes --------------------------------------------------------------------------

_BULK_IDS_KEPT = 1000


@transaction.atomic
def queryset_update_audited(
    *, queryset: QuerySet, tenant, actor, action: str, values: dict, request=None
) -> int:
    """`queryset.update(**values)` with one entry recording which rows changed and how.

    `QuerySet.update()` sends no signals, so django-auditlog never sees it: bulk changes go
    through here. The entry lists the ids (the first thousand, and the count) and, per
    field, the distinct values before and the value after.
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



# -- export ------------------------------------------------------------------------------------


def audit_export_open(*, tenant, actor, filters: dict, fmt: str, request=None):
    """Start an export of `tenant`'s entries matching `filters`: record it (exports are
    audited), then return (filename, content type, stream of bytes).

    The export holds the entries written before it was recorded: its own entry is taken
    under the chain's lock, so every earlier entry of the chain is committed by then.
    """
    from copilot_admin.audit.export import ExportFormat, export_stream
    from copilot_admin.audit.selectors import audit_entries, audit_entries_filter

    recorded_filters = {name: (value.isoformat() if hasattr(value, "isoformat") else value)
                        for name, value in filters.items()}
    with transaction.atomic():
        entry = audit_event_record(
            tenant=tenant, actor=actor, action="audit.export", object_type="audit", object_id=tenant.slug,
            object_repr=f"Audit log of {tenant.name}", request=request,
            metadata={"format": fmt, "filters": recorded_filters},
        )
    queryset = audit_entries_filter(audit_entries(tenant=tenant).filter(seq__lt=entry.seq), filters=filters)
    filename = f"audit-{tenant.slug}-{entry.created_at:%Y%m%dT%H%M%SZ}.{fmt}"
    return filename, ExportFormat.CONTENT_TYPES[fmt], export_stream(queryset, fmt)


# -- retention ---------------------------------------------------------------------------------

PURGE_SETTING = "copilot_admin.audit_purge"  # the PostgreSQL trigger lets DELETE through only with it on


def audit_retention_days(*, tenant_id: int | None) -> int:
    """How long the chain keeps its entries: its own period or the platform default, never
    below the platform minimum."""
    from django.conf import settings

    own = AuditChainHead.objects.filter(chain=chain_key(tenant_id)).values_list("retention_days", flat=True).first()
    return max(own or settings.AUDIT_RETENTION_DEFAULT_DAYS, settings.AUDIT_RETENTION_MIN_DAYS)


@transaction.atomic
def audit_retention_set(*, actor, tenant, days: int | None) -> int:
    """Set the tenant's retention period (None: the platform default). Platform operators
    only; never below the platform minimum. Recorded in the tenant's log."""
    from django.conf import settings

    from copilot_admin.core.errors import ApplicationError, PermissionRefused

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
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, %s, true)", [PURGE_SETTING, "on" if on else "off"])


def audit_purge_expired(*, tenant_id: int | None, now=None, batch_size: int | None = None) -> int:
    """Delete the chain's entries older than its retention period, oldest first, in batches
    (each its own transaction under the chain lock, so writers wait one batch at most).

    Only a prefix of the chain is ever removed; the chain head keeps the last removed
    entry's seq and hash as checkpoint, so what remains still verifies. Returns how many
    entries were removed; a purge that removed any is itself recorded."""
    from datetime import timedelta

    from django.conf import settings

    batch_size = batch_size or settings.AUDIT_PURGE_BATCH_SIZE
    days = audit_retention_days(tenant_id=tenant_id)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    if not AuditChainHead.objects.filter(chain=chain_key(tenant_id)).exists():
        return 0
    removed, through = 0, None
    while True:
        with transaction.atomic():
            head = _lock_head(tenant_id)
            batch = list(
                AuditEntry.objects.for_chain(tenant_id).filter(seq__gt=head.purged_through_seq).order_by("seq")
                .values("id", "seq", "hash", "created_at")[:batch_size]
            )
            expired = []
            for row in batch:
                if row["created_at"] >= cutoff:
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
    from copilot_admin.audit.selectors import audit_chains_to_verify

    return {chain_key(tenant_id): audit_purge_expired(tenant_id=tenant_id, now=now)
            for tenant_id in audit_chains_to_verify()}


# -- platform auditors ---------------------------------------------------------------------------


@transaction.atomic
def platform_auditor_grant(*, actor, user) -> None:
    """Let `user` read every tenant's audit log. Platform operators only (None: a command
    run on the server); recorded in the platform chain."""
    from copilot_admin.audit.models import PlatformAuditor
    from copilot_admin.core.errors import PermissionRefused

    if actor is not None and not getattr(actor, "is_platform_operator", False):
        raise PermissionRefused("Only platform operators grant platform audit access.")
    _, created = PlatformAuditor.objects.get_or_create(user=user, defaults={"granted_by": actor})
    if created:
        audit_event_record(tenant=None, actor=actor, action="audit.platform_auditor_grant", object_type="user",
                           object_id=user.pk, object_repr=user.email)


@transaction.atomic
def platform_auditor_revoke(*, actor, user) -> None:
    from copilot_admin.audit.models import PlatformAuditor
    from copilot_admin.core.errors import PermissionRefused

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

"""The audit log: one store for model changes and events, chained by hash per tenant.

`AuditEntry` is django-auditlog's log entry model (`AUDITLOG_LOGENTRY_MODEL`): it subclasses
`AbstractLogEntry`, so model changes (with django-auditlog's field diffs) and events (logins,
copilot calls, exports) land in one table. Entries are written explicitly by the services
(`copilot_admin.audit.services`), never by django-auditlog's signals.

Every entry belongs to one chain: its tenant's, or the platform chain (tenant empty) for
events that belong to no tenant (an operator's login, a failed login for an unknown
account). An entry is appended unsealed (`seq`, `prev_hash`, `hash` empty), without any
lock; the sealer (`audit_seal`) later numbers the committed entries of a chain by `seq` and
chains them: each `hash` covers the entry's canonical content and the previous entry's hash
(`copilot_admin.audit.chain`), so an edited, removed or inserted row breaks the chain where
it happened. `AuditChainHead` holds each chain's last sealed `seq` and `hash`; only the
sealer (and the retention purge) locks it, and the purge keeps there the hash of the last
entry it removed.

Entries survive the deletion of their tenant or actor: those references are plain columns
(no database constraint) and the actor's e-mail is kept as it was.
"""

from auditlog.models import AbstractLogEntry
from django.conf import settings
from django.db import models

from tenants.scoping import TenantScopeRequired

GENESIS_HASH = "0" * 64
PLATFORM_CHAIN = "platform"
SEAL_FIELDS = ("seq", "prev_hash", "hash")
# metadata key of a change entry: the raw values (ids, codes) beside the readable `changes`.
RAW_CHANGES_KEY = "raw"


class ActorType(models.TextChoices):
    USER = "user", "User"
    OPERATOR = "operator", "Platform operator"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Not signed in"


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILURE = "failure", "Failure"


class AuditEntryManager(models.Manager):
    """`objects` of AuditEntry: fail-closed like every tenant-owned model's manager.

    `for_tenant(tenant)` reads one tenant's chain, `platform_chain()` the platform's own
    entries. `across_tenants()` is the platform auditor's view over every chain; its call
    sites say why.
    """

    def get_queryset(self):
        raise TenantScopeRequired("AuditEntry.objects must be read through for_tenant(tenant) or platform_chain().")

    def none(self):
        return super().get_queryset().none()

    def for_tenant(self, tenant) -> models.QuerySet:
        if tenant is None or getattr(tenant, "pk", None) is None:
            raise TenantScopeRequired("AuditEntry.objects.for_tenant() needs a saved tenant.")
        return super().get_queryset().filter(tenant_id=tenant.pk)

    def platform_chain(self) -> models.QuerySet:
        return super().get_queryset().filter(tenant_id__isnull=True)

    def for_chain(self, tenant) -> models.QuerySet:
        """One chain: the tenant's (a tenant or its id, which may outlive the tenant), or the
        platform chain for None."""
        if tenant is None:
            return self.platform_chain()
        if isinstance(tenant, int):
            return super().get_queryset().filter(tenant_id=tenant)
        return self.for_tenant(tenant)

    def across_tenants(self) -> models.QuerySet:
        return super().get_queryset()


class AuditEntry(AbstractLogEntry):
    """One recorded change or event: who, from where, what, on which object, with what
    outcome, when; and, once sealed, its place in its chain.

    django-auditlog's fields keep their names where they mean the same (`actor`,
    `actor_email`, `object_repr`, `changes`, `remote_addr`, `content_type`) and are narrowed
    to what the chain hashes: `action` is ours ("membership.update", "auth.login"), not
    django-auditlog's create/update/delete number; `object_id` is the object's id as text
    (or a route, a feature); its `timestamp`, `cid` and `additional_data` are our
    `created_at`, `correlation_id` and `metadata`. Its snapshot and text columns
    (`serialized_data`, `changes_text`, `object_pk`, `remote_port`) are not kept: nothing
    in an entry escapes the hash except `content_type`, a lookup key for model changes
    derived from `object_type`.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+", editable=False,
    )
    seq = models.BigIntegerField(
        null=True, editable=False, help_text="Position in the tenant's (or the platform) chain; empty until sealed."
    )
    created_at = models.DateTimeField(editable=False, help_text="UTC.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+", editable=False,
    )
    actor_email = models.CharField(max_length=254, blank=True, editable=False)
    actor_type = models.CharField(max_length=12, choices=ActorType.choices, editable=False)
    remote_addr = models.CharField(max_length=64, blank=True, editable=False)
    action = models.CharField(max_length=64, editable=False, help_text='e.g. "membership.update", "auth.login_failed".')
    content_type = models.ForeignKey(
        "contenttypes.ContentType", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+", editable=False, help_text="The changed object's model (model changes only).",
    )
    object_type = models.CharField(max_length=64, blank=True, editable=False)
    object_id = models.CharField(max_length=64, blank=True, editable=False)
    object_repr = models.CharField(max_length=255, blank=True, editable=False)
    changes = models.JSONField(default=dict, blank=True, editable=False, help_text="{field: [before, after]}")
    metadata = models.JSONField(default=dict, blank=True, editable=False)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.SUCCESS, editable=False)
    correlation_id = models.CharField(max_length=64, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, null=True, editable=False)
    hash = models.CharField(max_length=64, null=True, editable=False)

    # django-auditlog's columns that our own fields above replace, or that we do not keep.
    timestamp = None
    cid = None
    additional_data = None
    object_pk = None
    serialized_data = None
    changes_text = None
    remote_port = None

    objects = AuditEntryManager()
    # Django's machinery (dumpdata, deletion collection) needs a default manager that can
    # be read without a tenant; application code reads through `objects`.
    unscoped_objects = models.Manager()

    class Meta:
        default_manager_name = "unscoped_objects"
        ordering = ["-id"]
        get_latest_by = "id"
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        # On PostgreSQL the table is partitioned by month (migration 0007): these two are unique
        # indexes of each month's partition there, kept unique across months by the append-only
        # trigger (a seal numbers above the chain head, under its lock); see audit/partitions.py.
        constraints = [
            models.UniqueConstraint(fields=["tenant", "seq"], name="audit_entry_unique_seq_per_tenant"),
            models.UniqueConstraint(
                fields=["seq"], condition=models.Q(tenant__isnull=True), name="audit_entry_unique_platform_seq"
            ),
        ]
        indexes = [
            # Keyset pagination newest first, per tenant, unfiltered and by each filter.
            models.Index(fields=["tenant", "-id"], name="audit_tenant_id_idx"),
            models.Index(fields=["tenant", "created_at"], name="audit_tenant_created_idx"),
            models.Index(fields=["tenant", "action", "-id"], name="audit_tenant_action_idx"),
            models.Index(fields=["tenant", "actor", "-id"], name="audit_tenant_actor_idx"),
            models.Index(fields=["tenant", "object_type", "object_id", "-id"], name="audit_tenant_object_idx"),
            # The outcome filter ("failure", "denied"): rare outcomes would otherwise walk the
            # tenant's whole newest-first index to fill one page.
            models.Index(fields=["tenant", "outcome", "-id"], name="audit_tenant_outcome_idx"),
            # The sealer's work list: the entries not sealed yet, per chain, in order.
            models.Index(fields=["tenant", "id"], condition=models.Q(seq__isnull=True), name="audit_unsealed_idx"),
        ]

    def __str__(self) -> str:
        position = f"#{self.seq}" if self.seq is not None else "(unsealed)"
        return f"{position} {self.action} {self.object_type}:{self.object_id}".rstrip(": ")

    @property
    def sealed(self) -> bool:
        return self.hash is not None


class AuditChainHead(models.Model):
    """The last sealed link of one chain, locked by the sealer of that chain (writers never
    touch it).

    `chain` is `tenant:<id>` or `platform`. `purged_through_seq` and `purged_last_hash` are
    the retention checkpoint: the chain is verified from there. `retention_days` overrides
    the platform default for this tenant (never below the platform minimum).
    """

    chain = models.CharField(max_length=40, unique=True)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)
    purged_through_seq = models.BigIntegerField(default=0)
    purged_last_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    retention_days = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.chain}@{self.seq}"


def chain_key(tenant_id: int | None) -> str:
    return PLATFORM_CHAIN if tenant_id is None else f"tenant:{tenant_id}"


class PlatformAuditor(models.Model):
    """A user who may read every tenant's audit log (and the platform's), and change nothing.

    Platform operators may read it too; this grant is for compliance staff who are not
    operators. Granted and revoked by operators (recorded in the platform chain)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="platform_auditor")
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"platform auditor {self.user_id}"


class AuditCheckpointManager(AuditEntryManager):
    """`objects` of AuditCheckpoint: read per chain like the entries themselves."""

    def get_queryset(self):
        raise TenantScopeRequired("AuditCheckpoint.objects must be read through for_tenant(tenant) or platform_chain().")


class AuditCheckpoint(models.Model):
    """A signed statement of one chain's head, recorded by the sealer with each seal: "the
    chain `chain` held `sequence` entries ending in `head_hash` at `at`".

    `signature` is HMAC-SHA256 under the key named `key_id` (`copilot_admin.audit.checkpoints`);
    the key lives in the environment, not in the database. Copies kept elsewhere (downloaded,
    e-mailed) let `audit_verify --checkpoints` prove that entries were removed or a chain
    rewritten even by someone who can write every table.
    """

    chain = models.CharField(max_length=40)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+",
        editable=False,
    )
    sequence = models.BigIntegerField(editable=False)
    head_hash = models.CharField(max_length=64, editable=False)
    at = models.DateTimeField(editable=False, help_text="UTC.")
    signature = models.CharField(max_length=64, editable=False)
    key_id = models.CharField(max_length=64, editable=False)

    objects = AuditCheckpointManager()
    unscoped_objects = models.Manager()

    class Meta:
        default_manager_name = "unscoped_objects"
        ordering = ["-id"]
        indexes = [models.Index(fields=["tenant", "-id"], name="audit_checkpoint_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.chain}@{self.sequence}"

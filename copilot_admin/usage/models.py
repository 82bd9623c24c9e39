"""Usage: limit counters, usage records (and, later, limit policies, abuse cases)."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned


class LimitCounter(models.Model):
    """One fixed window's running total for one limit key: the database counter backend's state.

    Written only by `copilot_admin.usage.counters.DatabaseCounterBackend`, which keeps `used`
    exact under concurrency. `key` is `<window>:<limit key>` (e.g. `minute:u:42:requests`);
    the limit keys carry tenant and membership ids, so this is infrastructure, not
    tenant-owned data, and it holds no content. Rows past `expires_at` are garbage.
    """

    key = models.CharField(max_length=191)
    window_start = models.DateTimeField(help_text="Start of the UTC-aligned window bucket.")
    used = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True, help_text="After this the row can be deleted.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"], name="usage_limitcounter_key_window_unique"),
            models.CheckConstraint(condition=models.Q(used__gte=0), name="usage_limitcounter_used_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.window_start:%Y-%m-%dT%H:%M:%SZ}={self.used}"


class UsageOutcome(models.TextChoices):
    OK = "ok", "Answered"
    REFUSED = "refused", "Refused before the upstream (limits, payload, no deployment)"
    FAILED = "failed", "Upstream failed or filtered"
    ERROR = "error", "Failed inside the portal after admission"
    CANCELLED = "cancelled", "The caller went away mid-call"


class UsageRecord(TenantOwned):
    """One copilot call that passed the access checks: who, which feature, where, how much.

    Metadata only: never a prompt, a completion, ticket text or anything the client sent
    besides the feature. `error_code` is the API error code of the contract (empty on
    success); `request_id` is ours (returned to the client, in the audit event and logs),
    `upstream_request_id` Azure's.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    membership = models.ForeignKey("tenants.Membership", null=True, on_delete=models.SET_NULL, related_name="+")
    feature = models.CharField(max_length=32)
    zone = models.CharField(max_length=16, help_text="Code of the data zone the call was routed in.")
    deployment = models.CharField(max_length=64, blank=True, help_text="The deployment that answered or failed last.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Upstream requests made (failover included).")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=12, choices=UsageOutcome.choices)
    error_code = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, unique=True)
    upstream_request_id = models.CharField(max_length=128, blank=True)
    template_version = models.CharField(max_length=32, blank=True)
    integration_key = models.CharField(
        max_length=16, blank=True, default="",
        help_text="The public id of the integration key the call was made with (empty: the member's own credential).",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="usage_record_tenant_time"),
            models.Index(fields=["tenant", "user", "created_at"], name="usage_record_tenant_user_time"),
        ]

    def __str__(self) -> str:
        return f"{self.feature} {self.outcome} {self.request_id}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# -- limit policies, copilot access, abuse cases, warnings, notifications, roll-ups -------
#
# Every model below belongs to the limits and abuse rules (issue 4). None of them holds
# content: limits are numbers, cases and notifications carry a system-written reason.


class LimitName(models.TextChoices):
    """The limits of a policy, named as the API's `limits/` fields (the contract)."""

    USER_REQUESTS_PER_MINUTE = "user_requests_per_minute", "Requests per user per minute"
    USER_REQUESTS_PER_HOUR = "user_requests_per_hour", "Requests per user per hour"
    USER_REQUESTS_PER_DAY = "user_requests_per_day", "Requests per user per day"
    USER_TOKENS_PER_DAY = "user_tokens_per_day", "Tokens per user per day"
    TENANT_TOKENS_PER_DAY = "tenant_tokens_per_day", "Tokens per tenant per day"


def _percent_validators():
    return [MinValueValidator(1), MaxValueValidator(100)]


def _positive():
    return [MinValueValidator(1)]


class PlatformLimitPolicy(models.Model):
    """The platform's limit policy (one row, pk 1): defaults, the maxima a tenant may set, and
    the abuse rules. Platform operators edit it; `limits.platform_policy()` reads it."""

    SINGLETON_PK = 1

    user_requests_per_minute = models.PositiveIntegerField(default=20, validators=_positive())
    user_requests_per_hour = models.PositiveIntegerField(default=300, validators=_positive())
    user_requests_per_day = models.PositiveIntegerField(default=1000, validators=_positive())
    user_tokens_per_day = models.PositiveBigIntegerField(default=500_000, validators=_positive())
    tenant_tokens_per_day = models.PositiveBigIntegerField(default=5_000_000, validators=_positive())
    warning_threshold_percent = models.PositiveSmallIntegerField(default=80, validators=_percent_validators())

    max_user_requests_per_minute = models.PositiveIntegerField(default=120, validators=_positive())
    max_user_requests_per_hour = models.PositiveIntegerField(default=3000, validators=_positive())
    max_user_requests_per_day = models.PositiveIntegerField(default=20_000, validators=_positive())
    max_user_tokens_per_day = models.PositiveBigIntegerField(default=5_000_000, validators=_positive())
    max_tenant_tokens_per_day = models.PositiveBigIntegerField(default=100_000_000, validators=_positive())

    strike_limit = models.PositiveSmallIntegerField(
        default=3, validators=_positive(),
        help_text="Strikes (hard-limit hits, content-filter refusals) within the strike window that suspend a user.",
    )
    strike_window_minutes = models.PositiveIntegerField(default=60, validators=_positive())
    suspension_minutes = models.PositiveIntegerField(
        default=60, validators=_positive(), help_text="How long an automatic suspension lasts."
    )
    suspensions_to_terminate = models.PositiveSmallIntegerField(
        default=3, validators=_positive(),
        help_text=(
            "The strike-out that would be this many suspensions within the termination window terminates instead."
        ),
    )
    termination_window_days = models.PositiveIntegerField(default=30, validators=_positive())
    review_near_limit_percent = models.PositiveSmallIntegerField(
        default=90, validators=_percent_validators(),
        help_text="Usage at or above this share of a limit counts as near the limit for the pattern review.",
    )
    review_sustained_hours = models.PositiveSmallIntegerField(
        default=8, validators=_positive(),
        help_text="Hours near the hourly request limit within one day that open a review case.",
    )
    review_sustained_days = models.PositiveSmallIntegerField(
        default=3, validators=_positive(),
        help_text="Days near the daily token limit within seven days that open a review case.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    AUDIT_EXCLUDED_FIELDS = ("updated_at",)

    class Meta:
        verbose_name = "platform limit policy"
        verbose_name_plural = "platform limit policy"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(pk=1), name="usage_platformlimitpolicy_singleton"
            ),
            *[
                models.CheckConstraint(
                    condition=models.Q(**{f"{name}__lte": models.F(f"max_{name}")}),
                    name=f"usage_platform_{name}_within_max",
                )
                for name in LimitName.values
            ],
        ]

    def __str__(self) -> str:
        return "Platform limit policy"


class TenantLimitPolicy(TenantOwned):
    """A tenant's overrides of the platform defaults; an empty field follows the default.

    Values are kept within the platform maxima when written; a maximum lowered later caps
    the effective value (`limits.effective_limits`)."""

    user_requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    user_requests_per_hour = models.PositiveIntegerField(null=True, blank=True)
    user_requests_per_day = models.PositiveIntegerField(null=True, blank=True)
    user_tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    tenant_tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    warning_threshold_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    AUDIT_EXCLUDED_FIELDS = ("updated_at",)

    class Meta(TenantOwned.Meta):
        verbose_name = "tenant limit policy"
        verbose_name_plural = "tenant limit policies"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="usage_tenantlimitpolicy_one_per_tenant")]

    def __str__(self) -> str:
        return f"Limit policy of tenant {self.tenant_id}"


class AccessStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    TERMINATED = "terminated", "Terminated"


class CopilotAccess(TenantOwned):
    """A user's copilot access in a tenant, as the abuse rules left it. No row: active.

    A suspension ends by itself at `suspended_until` (read as active from then on; the
    maintenance task writes the transition). A termination lasts until a platform operator
    reinstates. `strikes_counted_from` forgets the strikes that led to the last suspension
    or that a reinstatement forgave.
    """

    membership = models.OneToOneField("tenants.Membership", on_delete=models.CASCADE, related_name="copilot_access")
    status = models.CharField(max_length=12, choices=AccessStatus.choices, default=AccessStatus.ACTIVE)
    suspended_until = models.DateTimeField(null=True, blank=True)
    strikes_counted_from = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        verbose_name = "copilot access"
        verbose_name_plural = "copilot access"

    def __str__(self) -> str:
        return f"copilot access of membership {self.membership_id}: {self.status}"


    def state_at(self, moment) -> str:
        """The status in force at `moment`: a lapsed suspension reads as active."""
        lapsed = self.suspended_until is not None and self.suspended_until <= moment
        if self.status == AccessStatus.SUSPENDED and lapsed:
            return AccessStatus.ACTIVE
        return self.status


class StrikeKind(models.TextChoices):
    HARD_LIMIT = "hard_limit", "Hard limit hit"
    CONTENT_FILTER = "content_filter", "Content filter refusal"


class Strike(TenantOwned):
    """One strike against a user: a call refused by a limit or by the content filter."""

    membership = models.ForeignKey("tenants.Membership", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=StrikeKind.choices)
    limit = models.CharField(max_length=32, blank=True, help_text="The limit that refused (hard-limit strikes).")
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        indexes = [models.Index(fields=["membership", "occurred_at"], name="usage_strike_member_time")]

    def __str__(self) -> str:
        return f"{self.kind} strike of membership {self.membership_id}"


class CaseKind(models.TextChoices):
    SUSPENSION = "suspension", "Suspension"
    TERMINATION = "termination", "Termination"
    REVIEW = "review", "Usage pattern review"


class CaseStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class CaseResolution(models.TextChoices):
    REINSTATED = "reinstated", "Access reinstated"
    TERMINATED = "terminated", "Access terminated"
    DISMISSED = "dismissed", "Dismissed"
    EXPIRED = "expired", "Suspension ended"


class AbuseCase(TenantOwned):
    """Something the abuse rules did or want reviewed, about one user, and how it ended.

    Suspension and termination cases record an automatic (or manual) change of the user's
    copilot access; review cases are opened by the periodic pattern review and change
    nothing by themselves. `dedupe_key` makes a case at most once per cause."""

    membership = models.ForeignKey("tenants.Membership", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=CaseKind.choices)
    status = models.CharField(max_length=10, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    summary = models.CharField(max_length=255, help_text="Why the case was opened (written by the system).")
    details = models.JSONField(default=dict, blank=True, help_text="Numbers behind the case (strikes, limits, hours).")
    suspended_until = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Empty when the system opened it.",
    )
    resolution = models.CharField(max_length=12, choices=CaseResolution.choices, blank=True)
    resolution_reason = models.CharField(max_length=500, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Empty when the system resolved it.",
    )
    dedupe_key = models.CharField(max_length=120, blank=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-opened_at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "status", "opened_at"], name="usage_case_tenant_status"),
            models.Index(fields=["membership", "kind", "opened_at"], name="usage_case_member_kind"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "dedupe_key"], condition=~models.Q(dedupe_key=""), name="usage_abusecase_dedupe"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} case {self.pk} ({self.status})"


    @property
    def is_open(self) -> bool:
        return self.status == CaseStatus.OPEN


class LimitWarning(TenantOwned):
    """A limit's warning threshold was crossed in one window: at most one row per limit,
    subject (a user or the tenant) and window, which is what keeps the warning e-mail to
    once per limit and window, across processes and restarts."""

    limit = models.CharField(max_length=32, choices=LimitName.choices)
    subject_key = models.CharField(max_length=64, help_text="u:<membership id> or t:<tenant id>.")
    membership = models.ForeignKey(
        "tenants.Membership", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    window_start = models.DateTimeField()
    limit_value = models.PositiveBigIntegerField()
    used = models.PositiveBigIntegerField()
    threshold_percent = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "limit", "subject_key", "window_start"], name="usage_limitwarning_once_per_window"
            )
        ]

    def __str__(self) -> str:
        return f"{self.limit} warning for {self.subject_key} at {self.window_start:%Y-%m-%dT%H:%M}Z"


class NotificationKind(models.TextChoices):
    LIMIT_WARNING = "limit_warning", "Limit warning"
    ACCESS_SUSPENDED = "access_suspended", "Copilot access suspended"
    ACCESS_TERMINATED = "access_terminated", "Copilot access terminated"
    ACCESS_REINSTATED = "access_reinstated", "Copilot access reinstated"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Notification(TenantOwned):
    """One e-mail to one person, and what became of it. The row is the idempotency key of
    the sending task: a notification marked sent is never sent again. It carries no ticket
    content: the reason is written by the system from limit names and numbers."""

    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    to_email = models.EmailField()
    subject = models.CharField(max_length=200)
    reason = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    warning = models.ForeignKey(
        LimitWarning, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    case = models.ForeignKey(AbuseCase, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications")
    dedupe_key = models.CharField(max_length=120)

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="usage_notification_tenant_time"),
            models.Index(fields=["status", "created_at"], name="usage_notification_status"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "dedupe_key"], name="usage_notification_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_email} ({self.status})"


class DailyUsage(TenantOwned):
    """Per user, feature and UTC day: the calls and tokens, kept up to date by an atomic
    F() upsert on every call, so dashboards read one row per user, feature and day
    instead of every usage record."""

    membership = models.ForeignKey("tenants.Membership", on_delete=models.CASCADE, related_name="+")
    feature = models.CharField(max_length=32)
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0, help_text="Calls that passed the limits.")
    failed = models.PositiveIntegerField(default=0, help_text="Of those, calls that failed upstream or were filtered.")
    filtered = models.PositiveIntegerField(default=0, help_text="Of those, content-filter refusals.")
    rate_limited = models.PositiveIntegerField(default=0, help_text="Calls refused by a limit.")
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "membership", "feature", "day"], name="usage_daily_unique")
        ]
        indexes = [
            models.Index(fields=["tenant", "day"], name="usage_daily_tenant_day"),
            models.Index(fields=["tenant", "membership", "day"], name="usage_daily_tenant_member_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.feature} membership {self.membership_id}: {self.requests}"


class HourlyUsage(TenantOwned):
    """Per user and UTC hour: calls and tokens, for the pattern review (kept eight days)."""

    membership = models.ForeignKey("tenants.Membership", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "membership", "hour"], name="usage_hourly_unique")]
        indexes = [
            models.Index(fields=["hour"], name="usage_hourly_hour"),
            # The pattern review's and the dashboard's per-tenant hour range (and the purge).
            models.Index(fields=["tenant", "hour"], name="usage_hourly_tenant_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%dT%H}Z membership {self.membership_id}: {self.requests}"

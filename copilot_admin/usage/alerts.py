"""Alerts of the usage rules: limit warnings, and the e-mails of warnings, suspensions,
terminations and reinstatements; the alert events other rooms subscribe to.

Whenever a reservation or its correction moves a limit's window across one of its warning
thresholds (platform default 80% and 95%, tenant-configurable), `limit_warnings_record`
writes a `LimitWarning` row; its unique constraint (limit, subject, window, threshold) makes
each warning go out once per threshold and window, whatever the concurrency. A per-minute
limit warns on the dashboard and in the `usage.limit_warning` event only (an e-mail per minute
would be noise); a tenant with the daily digest on gets one e-mail a day listing the warnings
(`warning_digest_send`, Celery beat) instead of one per warning.

Alert events (`ALERT_EVENTS`): each is emitted by one function here, after the commit of the
transaction that caused it (`limit_warning_emit`, `access_suspended_emit`,
`access_terminated_emit`, `access_reinstated_emit`, `abuse_case_opened_emit`). Rooms above
usage (the webhooks) subscribe with `alert_subscribe(event, handler)`; a handler gets
`tenant_id`, `event` and a `payload` of names and numbers (never ticket content), and a
failing handler is logged, never propagated to the call or task that caused the event.

Each e-mail to each person is one `Notification` row, written in the transaction of the
event that causes it and unique per cause and recipient (`dedupe_key`), so an event that is
seen twice never notifies twice. After commit the row's id is handed to the Celery task
`send_notification`, which sends it with `notification_deliver`:

- the row is locked for the whole send and marked sent in the same transaction, so a
  redelivered task (acks_late; a worker killed mid-task) waits for the first one or finds
  the row sent, and never sends it again;
- an SMTP failure is recorded on the row (attempts, last error, still pending) and re-raised
  so the task retries with exponential backoff; after the last retry the row is `failed`;
- rows whose task was lost (the broker was down when it was enqueued) are enqueued again by
  the maintenance task (`notifications_resend_pending`).

The e-mails carry no ticket content: only limit names, numbers, dates and the user concerned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from copilot_admin.access.permissions import Perm
from copilot_admin.access.policy import permissions_of
from copilot_admin.audit.services import audit_change_record
from copilot_admin.usage import webhooks
from copilot_admin.usage.counters import Window, WindowUsage
from copilot_admin.usage.limits import LIMIT_WINDOWS, USER_LIMITS, EffectiveLimits
from copilot_admin.usage.models import (
    AbuseCase,
    LimitName,
    LimitWarning,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from tenants.models import Membership, Tenant, User, UserType

logger = logging.getLogger(__name__)

TEMPLATES = {
    NotificationKind.LIMIT_WARNING: "emails/usage_limit_warning",
    NotificationKind.ACCESS_SUSPENDED: "emails/usage_access_suspended",
    NotificationKind.ACCESS_TERMINATED: "emails/usage_access_terminated",
    NotificationKind.ACCESS_REINSTATED: "emails/usage_access_reinstated",
    NotificationKind.WEBHOOK_DISABLED: "emails/usage_webhook_disabled",
    NotificationKind.WARNING_DIGEST: "emails/usage_warning_digest",
    NotificationKind.CASE_OPENED: "emails/usage_case_opened",
}
# A pending notification whose task never ran (lost while the broker was down) is enqueued
# again after this long; one that failed and waits for a retry after RETRY_LOST_AFTER.
ENQUEUE_LOST_AFTER = timedelta(minutes=5)
RETRY_LOST_AFTER = timedelta(hours=2)


# -- alert events -------------------------------------------------------------------------------

LIMIT_WARNING = "usage.limit_warning"
ACCESS_SUSPENDED = "usage.access_suspended"
ACCESS_TERMINATED = "usage.access_terminated"
ACCESS_REINSTATED = "usage.access_reinstated"
CASE_OPENED = "abuse.case_opened"
ALERT_EVENTS: tuple[str, ...] = (LIMIT_WARNING, ACCESS_SUSPENDED, ACCESS_TERMINATED, ACCESS_REINSTATED, CASE_OPENED)

AlertHandler = Callable[..., None]
_subscribers: dict[str, list[AlertHandler]] = {event: [] for event in ALERT_EVENTS}


def alert_subscribe(event: str, handler: AlertHandler) -> None:
    """Call `handler(tenant_id=..., event=..., payload=...)` after the commit of every `event`
    (one of `ALERT_EVENTS`). Subscribing the same handler twice is a no-op."""
    if event not in _subscribers:
        raise ValueError(f"Unknown alert event {event!r}; one of {', '.join(ALERT_EVENTS)}.")
    if handler not in _subscribers[event]:
        _subscribers[event].append(handler)


def alert_unsubscribe(event: str, handler: AlertHandler) -> None:
    if handler in _subscribers.get(event, []):
        _subscribers[event].remove(handler)


def _emit(*, tenant_id: int, event: str, payload: dict) -> None:
    """Hand the event to its subscribers after commit; each handler's failure is logged."""
    handlers = list(_subscribers[event])
    if not handlers:
        return

    def deliver() -> None:
        for handler in handlers:
            try:
                handler(tenant_id=tenant_id, event=event, payload=payload)
            except Exception:  # noqa: BLE001 - a subscriber must not fail the cause of the event
                logger.exception("Alert subscriber %r failed for %s (tenant %s).", handler, event, tenant_id)

    transaction.on_commit(deliver, robust=True)


def limit_warning_payload(warning: LimitWarning, *, email: str = "") -> dict:
    return {
        "limit": warning.limit,
        "user": warning.membership_id,
        "email": email,
        "window": str(LIMIT_WINDOWS[warning.limit]),
        "window_start": warning.window_start.isoformat(),
        "used": warning.used,
        "limit_value": warning.limit_value,
        "threshold_percent": warning.threshold_percent,
        "warning_id": warning.pk,
    }


def limit_warning_emit(*, warning: LimitWarning, membership: Membership | None) -> None:
    """`usage.limit_warning`: a threshold of a limit was crossed in a window (once per threshold and window)."""
    email = membership.user.email if membership is not None else ""
    _emit(tenant_id=warning.tenant_id, event=LIMIT_WARNING, payload=limit_warning_payload(warning, email=email))


def _case_payload(case: AbuseCase) -> dict:
    return {
        "case_id": case.pk,
        "kind": case.kind,
        "user": case.membership_id,
        "email": case.membership.user.email,
        "summary": case.summary,
        "opened_at": case.opened_at.isoformat(),
        "suspended_until": case.suspended_until.isoformat() if case.suspended_until else None,
    }


def access_suspended_emit(*, case: AbuseCase) -> None:
    """`usage.access_suspended`: the user's copilot access was suspended (the case says why and until when)."""
    _emit(tenant_id=case.tenant_id, event=ACCESS_SUSPENDED, payload=_case_payload(case))


def access_terminated_emit(*, case: AbuseCase) -> None:
    """`usage.access_terminated`: the user's copilot access was terminated."""
    _emit(tenant_id=case.tenant_id, event=ACCESS_TERMINATED, payload=_case_payload(case))


def access_reinstated_emit(*, case: AbuseCase) -> None:
    """`usage.access_reinstated`: the user's copilot access was given back."""
    _emit(tenant_id=case.tenant_id, event=ACCESS_REINSTATED, payload=_case_payload(case))


def abuse_case_opened_emit(*, case: AbuseCase) -> None:
    """`abuse.case_opened`: an anomaly or review case was opened (suspensions and terminations
    emit their own events)."""
    _emit(tenant_id=case.tenant_id, event=CASE_OPENED, payload=_case_payload(case))


_ACCESS_EVENTS = {
    NotificationKind.ACCESS_SUSPENDED: access_suspended_emit,
    NotificationKind.ACCESS_TERMINATED: access_terminated_emit,
    NotificationKind.ACCESS_REINSTATED: access_reinstated_emit,
}


# -- recipients and notifications -------------------------------------------------------------

def tenant_administrators(tenant: Tenant) -> list[Membership]:
    """The tenant's active members who may manage its usage limits (`admin.limits`)."""
    members = (
        Membership.objects.for_tenant(tenant)
        .granting_access()
        .filter(user__is_active=True, user_type=UserType.INTERNAL)
        .select_related("user", "role")
    )
    return [member for member in members if Perm.LIMITS in permissions_of(member)]


def notify(
    *,
    tenant: Tenant,
    kind: str,
    recipients: Iterable[User | None],
    subject: str,
    reason: str,
    cause: str,
    warning: LimitWarning | None = None,
    case: AbuseCase | None = None,
) -> list[Notification]:
    """One notification per distinct recipient for one cause, enqueued after commit.

    `cause` names the event (e.g. `warning:42`); with the recipient it forms the row's
    unique key, so the same event never notifies the same person twice.
    """
    created: list[Notification] = []
    seen: set[int] = set()
    for user in recipients:
        if user is None or user.pk in seen or not user.email or not user.is_active:
            continue
        seen.add(user.pk)
        try:
            with transaction.atomic():
                created.append(
                    Notification.objects.for_tenant(tenant).create(
                        tenant=tenant,
                        kind=kind,
                        recipient=user,
                        to_email=user.email,
                        subject=subject[:200],
                        reason=reason[:255],
                        warning=warning,
                        case=case,
                        dedupe_key=f"{cause}:{user.pk}"[:120],
                    )
                )
        except IntegrityError:
            continue  # this person was already notified of this event
    if created:
        ids = [notification.pk for notification in created]
        tenant_id = tenant.pk
        transaction.on_commit(lambda: notifications_enqueue(tenant_id=tenant_id, ids=ids), robust=True)
    return created


def notifications_enqueue(*, tenant_id: int, ids: Iterable[int]) -> None:
    """Hand each notification to the sending task. A broker that cannot be reached is logged;
    the row stays pending and the maintenance task enqueues it again."""
    # The one accepted function-level import: a service enqueuing its own task (tasks.py imports this module).
    from copilot_admin.usage.tasks import send_notification

    for notification_id in ids:
        try:
            send_notification.delay(tenant_id=tenant_id, notification_id=notification_id)
        except Exception:  # noqa: BLE001 - the row is pending; notifications_resend_pending picks it up
            logger.exception("Enqueueing notification %s failed; it stays pending.", notification_id)


def _window_text(warning: LimitWarning) -> str:
    window = LIMIT_WINDOWS[warning.limit]
    return f"{window.label.lower()} from {warning.window_start:%Y-%m-%d %H:%M} UTC"


def limit_warning_notify(*, warning: LimitWarning, membership: Membership | None) -> list[Notification]:
    """The warning e-mails of one crossed threshold: the user (for a user limit) and the
    tenant's administrators."""
    tenant = warning.tenant
    percent = round(100 * warning.used / warning.limit_value) if warning.limit_value else 100
    who = f"{membership.user.email}: " if membership is not None else "The tenant: "
    reason = (
        f"{who}{warning.limit} at {warning.used} of {warning.limit_value} ({percent}%, warning at "
        f"{warning.threshold_percent}%) in the {_window_text(warning)}"
    )
    recipients = [membership.user] if membership is not None else []
    recipients += [admin.user for admin in tenant_administrators(tenant)]
    return notify(
        tenant=tenant,
        kind=NotificationKind.LIMIT_WARNING,
        recipients=recipients,
        subject=f"Copilot usage warning: {LimitName(warning.limit).label} at {percent}%",
        reason=reason,
        cause=f"warning:{warning.pk}",
        warning=warning,
    )


def warning_emails(*, name: str, limits: EffectiveLimits) -> bool:
    """Whether a warning of limit `name` is e-mailed on its own: not for a per-minute limit
    (dashboard and webhook only), not when the tenant takes the daily digest."""
    return LIMIT_WINDOWS[name] != Window.MINUTE and not limits.alert_digest


def limit_warnings_record(
    *, membership: Membership, limits: EffectiveLimits, windows: Iterable[WindowUsage]
) -> list[LimitWarning]:
    """Record a warning for every threshold this operation moved a window across, at most once
    per limit, subject, window and threshold, emit `usage.limit_warning` and e-mail it (after
    commit) unless `warning_emails` says not to.

    User limits warn the user and the tenant's administrators; the tenant's token limit
    warns the administrators. A jump across several thresholds at once warns of each.
    Returns the warnings written now (none if already warned). Never raises: a warning must
    not fail the call that crossed the threshold (failures are logged).
    """
    written: list[LimitWarning] = []
    for usage in windows:
        for percent in limits.warning_thresholds:
            if not usage.crossed(percent=percent):
                continue
            warning = _limit_warning_write(membership=membership, limits=limits, usage=usage, percent=percent)
            if warning is not None:
                written.append(warning)
    return written


def _limit_warning_write(
    *, membership: Membership, limits: EffectiveLimits, usage: WindowUsage, percent: int
) -> LimitWarning | None:
    name = usage.name
    per_user = name in USER_LIMITS
    emailed = warning_emails(name=name, limits=limits)
    try:
        tenant = membership.tenant
        with transaction.atomic():
            warning = LimitWarning.objects.for_tenant(tenant).create(
                tenant=tenant,
                limit=name,
                subject_key=f"u:{membership.pk}" if per_user else f"t:{tenant.pk}",
                membership=membership if per_user else None,
                window_start=usage.window_start,
                limit_value=usage.limit,
                used=usage.used_after,
                threshold_percent=percent,
                emailed=emailed,
            )
            audit_change_record(actor=None, tenant=tenant, instance=warning)  # the system warns
            limit_warning_emit(warning=warning, membership=membership if per_user else None)
            webhooks.webhook_limit_warning(warning=warning, membership=membership if per_user else None)
            if emailed:
                limit_warning_notify(warning=warning, membership=membership if per_user else None)
    except IntegrityError:
        return None  # another call crossed first in this window: warned once already
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("Recording a limit warning failed (tenant %s, %s).", membership.tenant_id, name)
        return None
    return warning


def warning_digest_send(*, day, now=None) -> list[Notification]:
    """The daily digest: for each tenant that takes it, one e-mail to each administrator
    listing the warnings of `day` (UTC) that were not e-mailed one by one (per-minute limits
    excluded: they stay on the dashboard and in the webhooks), and one to each user listing
    its own. Once per tenant, day and recipient (the notification's key); the listed warnings
    are marked `digested_at`. Returns the notifications written."""
    now = now or timezone.now()
    written: list[Notification] = []
    minute_limits = [name for name, window in LIMIT_WINDOWS.items() if window == Window.MINUTE]
    for tenant in Tenant.objects.all():
        with transaction.atomic():
            warnings = list(
                LimitWarning.objects.for_tenant(tenant)
                .filter(created_at__date=day, emailed=False)
                .exclude(limit__in=minute_limits)
                .select_related("membership__user")
                .order_by("created_at", "pk")
            )
            if not warnings:
                continue
            lines = [_digest_line(warning) for warning in warnings]
            cause = f"digest:{day:%Y-%m-%d}"
            subject = f"Copilot usage warnings of {day:%Y-%m-%d} ({tenant.name})"
            written += notify(
                tenant=tenant, kind=NotificationKind.WARNING_DIGEST,
                recipients=[admin.user for admin in tenant_administrators(tenant)],
                subject=subject, reason=f"{len(lines)} warning(s): " + "; ".join(lines), cause=cause,
            )
            per_user: dict[int, list[LimitWarning]] = {}
            for warning in warnings:
                if warning.membership_id is not None:
                    per_user.setdefault(warning.membership_id, []).append(warning)
            for own in per_user.values():
                user = own[0].membership.user
                written += notify(
                    tenant=tenant, kind=NotificationKind.WARNING_DIGEST, recipients=[user], subject=subject,
                    reason=f"{len(own)} warning(s): " + "; ".join(_digest_line(item) for item in own), cause=cause,
                )
            LimitWarning.objects.for_tenant(tenant).filter(pk__in=[w.pk for w in warnings]).update(digested_at=now)
    return written


def _digest_line(warning: LimitWarning) -> str:
    who = warning.membership.user.email if warning.membership_id else "the tenant"
    return (f"{who} {warning.limit} {warning.threshold_percent}% ({warning.used} of {warning.limit_value}) "
            f"at {warning.created_at:%H:%M} UTC")


_CASE_SUBJECTS = {
    NotificationKind.ACCESS_SUSPENDED: "Copilot access suspended",
    NotificationKind.ACCESS_TERMINATED: "Copilot access terminated",
    NotificationKind.ACCESS_REINSTATED: "Copilot access reinstated",
}


def access_change_notify(*, case: AbuseCase, kind: str, reason: str) -> list[Notification]:
    """Tell the user and the tenant's administrators that the user's copilot access changed
    (e-mail), and the subscribers of the access event."""
    tenant = case.tenant
    user = case.membership.user
    webhooks.webhook_access_changed(case=case, kind=kind, reason=reason)
    _ACCESS_EVENTS[kind](case=case)
    return notify(
        tenant=tenant,
        kind=kind,
        recipients=[user, *(admin.user for admin in tenant_administrators(tenant))],
        subject=f"{_CASE_SUBJECTS[kind]} ({tenant.name})",
        reason=f"{user.email}: {reason}",
        cause=f"case:{case.pk}:{kind}",
        case=case,
    )


def case_opened_notify(*, case: AbuseCase) -> list[Notification]:
    """An anomaly (or review) case was opened: the tenant's administrators are e-mailed (not
    the user: the case is for them to look at first) and `abuse.case_opened` is emitted."""
    abuse_case_opened_emit(case=case)
    webhooks.webhook_case_opened(case=case)
    tenant = case.tenant
    return notify(
        tenant=tenant,
        kind=NotificationKind.CASE_OPENED,
        recipients=[admin.user for admin in tenant_administrators(tenant)],
        subject=f"Copilot abuse case opened ({tenant.name})",
        reason=f"{case.membership.user.email}: {case.summary}",
        cause=f"case:{case.pk}:opened",
        case=case,
    )


# -- sending ----------------------------------------------------------------------------------

def _message_id(notification: Notification) -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "copilot-admin.localhost"
    return f"<notification.{notification.tenant_id}.{notification.pk}@{domain}>"


def _context(notification: Notification, tenant: Tenant) -> dict:
    site = settings.SITE_URL.rstrip("/")
    recipient_may_view_usage = False
    if notification.recipient_id:
        member = (
            Membership.objects.for_tenant(tenant)
            .granting_access()
            .filter(user_id=notification.recipient_id)
            .select_related("user", "role")
            .first()
        )
        recipient_may_view_usage = member is not None and Perm.USAGE_VIEW in permissions_of(member)
    page = "usage:dashboard" if recipient_may_view_usage else "directory:overview"
    return {
        "notification": notification,
        "tenant": tenant,
        "warning": notification.warning,
        "case": notification.case,
        "link": site + reverse(page, kwargs={"tenant_slug": tenant.slug}),
    }


def _send(notification: Notification, tenant: Tenant) -> None:
    template = TEMPLATES[notification.kind]
    context = _context(notification, tenant)
    message = EmailMultiAlternatives(
        subject=notification.subject,
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.to_email],
        headers={"Message-ID": _message_id(notification)},
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    message.send(fail_silently=False)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc!s}"[:200]


def notification_deliver(*, tenant_id: int, notification_id: int, final_attempt: bool = False) -> str:
    """Send one notification unless it was sent already; returns its status afterwards.

    The row stays locked from the check to the commit of `sent`, so concurrent or
    redelivered tasks cannot both send it. An SMTP failure (OSError) is recorded and
    re-raised for the task to retry; on the final attempt the row becomes `failed`.
    """
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return "missing"
    failure: OSError | None = None
    with transaction.atomic():
        notification = (
            Notification.objects.for_tenant(tenant).select_for_update().filter(pk=notification_id).first()
        )
        if notification is None:
            return "missing"
        if notification.status == NotificationStatus.SENT:
            return NotificationStatus.SENT
        notification.attempts += 1
        notification.last_attempt_at = timezone.now()
        try:
            _send(notification, tenant)
        except OSError as exc:  # SMTP errors are OSErrors too
            failure = exc
            notification.status = NotificationStatus.FAILED if final_attempt else NotificationStatus.PENDING
            notification.last_error = _error_text(exc)
            logger.warning(
                "Notification %s (tenant %s) not sent, attempt %s: %s",
                notification.pk, tenant.pk, notification.attempts, notification.last_error,
            )
        else:
            notification.status = NotificationStatus.SENT
            notification.sent_at = timezone.now()
            notification.last_error = ""
        notification.save(update_fields=["status", "attempts", "last_attempt_at", "sent_at", "last_error"])
    if failure is not None:
        raise failure
    return notification.status


def notifications_resend_pending(*, now=None) -> int:
    """Enqueue again the pending notifications whose task was lost; returns how many."""
    now = now or timezone.now()
    lost = Q(attempts=0, created_at__lt=now - ENQUEUE_LOST_AFTER) | Q(
        attempts__gt=0, last_attempt_at__lt=now - RETRY_LOST_AFTER
    )
    count = 0
    for tenant in Tenant.objects.all().only("pk"):
        ids = list(
            Notification.objects.for_tenant(tenant)
            .filter(lost, status=NotificationStatus.PENDING)
            .values_list("pk", flat=True)[:500]
        )
        if ids:
            notifications_enqueue(tenant_id=tenant.pk, ids=ids)
            count += len(ids)
    return count

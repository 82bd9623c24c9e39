"""Signals of other parts that the audit log records: Django's logins, failed logins and
logouts, and django-axes' lockouts (they happen inside those libraries, which cannot call a
service). Connected in AuditConfig.ready()."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from copilot_admin.audit.models import ActorType, Outcome
from copilot_admin.audit.services import audit_event_record, audit_event_record_for_user_tenants
from tenants.models import User


def _known_user(identifier):
    if not isinstance(identifier, str) or not identifier.strip():
        return None
    return User.objects.filter(email=identifier.strip().lower()).first()


def _user_event(*, user, actor, action, request, outcome=Outcome.SUCCESS, actor_type=None, metadata=None):
    audit_event_record_for_user_tenants(
        user=user, actor=actor, actor_type=actor_type, action=action, object_type="user",
        object_id=user.pk, object_repr=user.email, outcome=outcome, request=request, metadata=metadata,
    )


@receiver(user_logged_in, dispatch_uid="audit_login")
def _login(sender, request, user, **kwargs):
    _user_event(user=user, actor=user, action="auth.login", request=request)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logout(sender, request, user, **kwargs):
    if user is not None:
        _user_event(user=user, actor=user, action="auth.logout", request=request)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    """The account is named only when it exists: what someone typed into the e-mail field
    may be anything (even a password) and is not kept."""
    user = _known_user(credentials.get("email") or credentials.get("username"))
    if user is not None:
        _user_event(user=user, actor=None, actor_type=ActorType.ANONYMOUS, action="auth.login_failed",
                    request=request, outcome=Outcome.FAILURE)
    else:
        audit_event_record(tenant=None, actor=None, actor_type=ActorType.ANONYMOUS, action="auth.login_failed",
                           object_type="user", outcome=Outcome.FAILURE, request=request,
                           metadata={"account": "unknown"})


@receiver(user_locked_out, dispatch_uid="audit_lockout")
def _locked_out(sender, request, username=None, ip_address=None, **kwargs):
    if getattr(request, "login_throttle_retry_after", None):
        # A throttled attempt (directory.login_guard) is not a lockout; its failures are recorded already.
        return
    user = _known_user(username)
    if user is not None:
        _user_event(user=user, actor=None, actor_type=ActorType.ANONYMOUS, action="auth.lockout",
                    request=request, outcome=Outcome.DENIED)
    else:
        audit_event_record(tenant=None, actor=None, actor_type=ActorType.ANONYMOUS, action="auth.lockout",
                           object_type="address", object_id=ip_address or "", outcome=Outcome.DENIED,
                           request=request, metadata={"account": "unknown"})

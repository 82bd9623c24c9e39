"""Session engine (SESSION_ENGINE) that stores the user id beside each session, and when a
request's credential (session or API token) was issued."""

from datetime import datetime
from datetime import timezone as dt_timezone

from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tenants.models import UserSession


class SessionStore(DBStore):
    @classmethod
    def get_model_class(cls):
        return UserSession

    def create_model_instance(self, data):
        instance = super().create_model_instance(data)
        try:
            instance.user_id = int(data.get("_auth_user_id"))
        except (TypeError, ValueError):
            instance.user_id = None
        return instance


# When the session's user logged in (ISO 8601): a membership deactivated later refuses it.
SESSION_LOGIN_AT = "_login_at"
_UNKNOWN = datetime.min.replace(tzinfo=dt_timezone.utc)


def session_mark_login(sender, request, user, **kwargs) -> None:
    """`user_logged_in` receiver: remember when this session's credential was issued."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SESSION_LOGIN_AT] = timezone.now().isoformat()


def credential_issued_at(request) -> datetime:
    """When the credential of an authenticated request was issued: its API token's creation,
    else its session's login. Unknown (a session from before this was recorded): the
    earliest moment, so that a deactivation refuses it too."""
    token = getattr(request, "auth", None)
    created = getattr(token, "created", None)
    if isinstance(created, datetime):
        return created
    session = getattr(request, "session", None)
    raw = session.get(SESSION_LOGIN_AT) if session is not None else None
    parsed = parse_datetime(raw) if isinstance(raw, str) else None
    return parsed or _UNKNOWN

"""The seam between a password check and a second factor.

The password login (directory: the token API) and the second factors (identity: MFA) are
peers that must not import each other. After a correct password, the login sends
`password_verified`; a receiver (identity's MFA) may refuse the login by raising
`SecondFactorRefused` (401 `mfa_required` / `invalid_otp`, 429 `login_throttled` with
`retry_after`). No receiver: the password alone logs in.
"""

from django.dispatch import Signal
from rest_framework import status

from copilot_admin.core.errors import ApplicationError

# Sent with keyword arguments `request`, `user` and `otp` (the second factor the client gave, or None).
password_verified = Signal()


class SecondFactorRefused(ApplicationError):
    """A login refused for its second factor: missing, wrong, or too many failures."""

    status_code = status.HTTP_401_UNAUTHORIZED
    code = "mfa_required"

    def __init__(
        self, message: str, *, code: str | None = None, status_code: int | None = None, retry_after: int | None = None
    ):
        super().__init__(message, code=code, status_code=status_code)
        self.retry_after = retry_after

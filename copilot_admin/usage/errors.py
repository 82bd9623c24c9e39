"""Errors of the usage rules, in the application's one error type."""

from copilot_admin.core.errors import ApplicationError


class RateLimitExceeded(ApplicationError):
    """A usage limit refuses the call; `retry_after` is the wait in whole seconds and `limit`
    names the limit that refused (a `LimitName` value: `user_requests_per_minute`, ...)."""

    status_code = 429
    code = "rate_limited"

    def __init__(
        self, message: str = "A usage limit was reached. Try again later.", *, retry_after: int = 1, limit: str = ""
    ) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.limit = limit

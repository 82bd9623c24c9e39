"""Helpers for the usage-rule tests: policies, clocks, calls through the copilot's hooks."""

from datetime import UTC, datetime

from copilot_admin.usage import services as usage
from copilot_admin.usage.models import PlatformLimitPolicy, UsageOutcome

GENEROUS = {
    "user_requests_per_minute": 1000,
    "user_requests_per_hour": 10_000,
    "user_requests_per_day": 10_000,
    "user_tokens_per_day": 10_000_000,
    "tenant_tokens_per_day": 100_000_000,
    "max_user_requests_per_minute": 1000,
    "max_user_requests_per_hour": 10_000,
    "max_user_requests_per_day": 10_000,
    "max_user_tokens_per_day": 10_000_000,
    "max_tenant_tokens_per_day": 100_000_000,
}


def set_policy(**values) -> PlatformLimitPolicy:
    """The platform policy with generous limits except the ones given."""
    policy = PlatformLimitPolicy.objects.filter(pk=1).first() or PlatformLimitPolicy(pk=1)
    for name, value in {**GENEROUS, **values}.items():
        setattr(policy, name, value)
    for name in ("user_requests_per_minute", "user_requests_per_hour", "user_requests_per_day",
                 "user_tokens_per_day", "tenant_tokens_per_day"):
        if getattr(policy, name) > getattr(policy, f"max_{name}"):
            setattr(policy, f"max_{name}", getattr(policy, name))
    policy.save()
    return policy


def call(membership, *, tokens: int = 0, used: tuple[int, int] | None = None, feature: str = "summarize",
         outcome: str = UsageOutcome.OK, error_code: str = ""):
    """One copilot call through the hooks the copilot service uses: reserve, settle, record."""
    reservation = usage.limits_reserve(membership=membership, feature=feature, estimated_tokens=tokens)
    prompt, completion = used if used is not None else (tokens, 0)
    usage.limits_settle(reservation=reservation, sent=True, prompt_tokens=prompt, completion_tokens=completion)
    usage.usage_record_create(
        membership=membership, feature=feature, zone="us", outcome=outcome, request_id=_request_id(),
        prompt_tokens=prompt, completion_tokens=completion, error_code=error_code,
    )
    return reservation


def refused(membership, *, feature: str = "summarize"):
    """One call through the hooks, expected to be refused by a limit (recorded as the copilot service does)."""
    try:
        usage.limits_reserve(membership=membership, feature=feature, estimated_tokens=0)
    except usage.RateLimitExceeded as error:
        usage.usage_record_create(membership=membership, feature=feature, zone="us", outcome=UsageOutcome.REFUSED,
                                  request_id=_request_id(), error_code="rate_limited", limit=error.limit)
        return error
    raise AssertionError("the call was admitted")


_serial = [0]


def _request_id() -> str:
    _serial[0] += 1
    return f"test-{datetime.now(tz=UTC).timestamp()}-{_serial[0]}"

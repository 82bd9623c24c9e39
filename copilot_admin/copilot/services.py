"""The copilot call: access, routing, the upstream call, usage and audit, in the contract's order.

`copilot_invoke` (sync) and `acopilot_invoke` (async, for the ASGI API) run the same steps;
the async one does its database work in short hops (`run_orm`) and never holds a thread or a
database connection while it waits for Azure OpenAI.

The access decision, first failure wins (DESIGN.md):
 1. authenticated (401 `not_authenticated`), active member of the tenant (404 `not_found`:
    a stranger cannot learn that a tenant exists)
 2. tenant active (403 `tenant_suspended`)
 3. plan entitles copilot (403 `not_entitled`)
 4. tenant master switch on (403 `copilot_disabled`)
 5. feature switched on for the tenant (403 `feature_disabled`)
 6. the role grants the feature (403 `permission_denied`)
 7. the user's copilot access is not suspended or terminated (403 `access_suspended`,
    `access_terminated`)
 8. the client company is in the caller's scope (403 `company_out_of_scope`; a missing or
    malformed company id is 400 `invalid_payload`; an unknown, foreign or out-of-scope one
    answers alike) and active (400 `company_inactive`: a deactivated company is out of every
    member's copilot scope, internal users' too)
 9. within the usage limits, reserved atomically (429 `rate_limited` with Retry-After; 503
    `limits_unavailable` when the counters cannot be reached)
10. an active deployment serves the tenant's zone (503 `no_deployment_in_zone`)
Then the payload is minimized (400 `invalid_payload` / 413 `payload_too_large`; nothing is
sent), the feature's prompt rendered, the zone's deployments called in priority order with
failover inside the zone only, and upstream failures mapped to the contract's codes.

Guarantees:
- Nothing but the minimized payload reaches the model (`minimize` and `prompts`).
- A call that passed the access checks (step 8) leaves exactly one `UsageRecord`; every
  decided call of a member leaves one audit event `copilot.call`. Both hold metadata only
  (feature, zone, deployment, outcome, tokens, latency, ids), never ticket or model text;
  log lines likewise.
- Once the limits reservation is taken, the call ends through one path (`_conclude`) that
  cannot be skipped: whatever is raised afterwards, of any type, the reservation is settled
  exactly once (corrected to the tokens used; released when nothing was sent; the estimate
  kept when the tokens are unknown, e.g. the caller went away mid-call) and the call is
  recorded (usage record and audit entry, together). An unexpected exception is
  recorded as outcome `error` and answered 502 `upstream_error`, never a 500; a caller that
  went away is recorded as `cancelled`.
- The bookkeeping is one transaction (usage record, roll-ups, any strike, audit entry: all or
  none), after the settlement; on PostgreSQL, without a strike, one statement (`_finish`).
  Deployment health is recorded for every upstream attempt after it, outside any transaction: a failure as one plain UPDATE at once, successes batched
  per process and deployment (`regions.services.deployment_health_record`); best effort: a
  failure to record it is logged and does not fail the call. `tests/copilot/test_bookkeeping.py`
  counts them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from copilot_admin.access.policy import has_permission
from copilot_admin.audit.services import audit_event_record
from copilot_admin.copilot import azure
from copilot_admin.copilot.features import Feature, get_feature
from copilot_admin.copilot.minimize import PayloadError, minimize_payload
from copilot_admin.copilot.prompts import ChatMessage, render_messages
from copilot_admin.copilot.targets import deployments_for_zone
from copilot_admin.core.errors import ApplicationError, NotFound
from copilot_admin.core.inserts import OneStatement
from copilot_admin.core.memo import BoundedMemo
from copilot_admin.core.versioned_cache import Read, planned_reads_end
from copilot_admin.regions.selectors import deployments_serving_read
from copilot_admin.regions.services import deployment_health_record
from copilot_admin.usage import services as usage
from copilot_admin.usage.models import UsageOutcome
from copilot_admin.usage.selectors import call_limits_read
from tenants.models import Membership, User
from tenants.selectors import company_scope, company_scope_read, membership_resolve

logger = logging.getLogger(__name__)

T = TypeVar("T")

AUDIT_ACTION = "copilot.call"
AUDIT_OBJECT_TYPE = "copilot.feature"

# Refusals of the access chain: code -> (HTTP status, message). Messages never name another
# tenant's objects or echo the request.
REFUSALS: dict[str, tuple[int, str]] = {
    "not_authenticated": (401, "Authentication credentials were not provided."),
    "tenant_suspended": (403, "This tenant is suspended."),
    "not_entitled": (403, "The tenant's plan does not include the copilot."),
    "copilot_disabled": (403, "The copilot is switched off for this tenant."),
    "feature_disabled": (403, "This copilot feature is switched off for this tenant."),
    "permission_denied": (403, "Your security role does not grant this copilot feature."),
    "access_suspended": (403, "Your copilot access is suspended."),
    "access_terminated": (403, "Your copilot access is terminated until a platform operator reinstates it."),
    "company_out_of_scope": (403, "The client company is not in your scope."),
    "company_inactive": (400, "The client company is deactivated; the copilot is not used on its tickets."),
    "no_deployment_in_zone": (503, "No Azure OpenAI deployment serves this tenant's data zone right now."),
}


class CopilotError(ApplicationError):
    """A refused or failed copilot call, in the contract's error shape.

    `extra` holds further members of the error body (`stage`, `categories` for
    `content_filtered`; `request_id` once one was assigned); `retry_after` is the
    Retry-After header in whole seconds for 429.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status_code: int,
        fields: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status_code=status_code, fields=dict(fields or {}))
        self.extra = dict(extra or {})
        self.retry_after = retry_after

    @classmethod
    def refusal(cls, code: str, **kwargs: Any) -> CopilotError:
        status_code, message = REFUSALS[code]
        return cls(message, code=code, status_code=status_code, **kwargs)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, **self.extra}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


@dataclass(frozen=True)
class CopilotAnswer:
    """A successful call: the feature's validated result and the call's metadata."""

    feature: str
    output: dict[str, Any]
    request_id: str
    zone: str
    deployment: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    template_version: str

    def as_response(self) -> dict[str, Any]:
        """The API's 200 body: the result's fields plus `request_id`, `zone` and `usage`."""
        return {
            **self.output,
            "request_id": self.request_id,
            "zone": self.zone,
            "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens},
        }


@dataclass(frozen=True)
class CallOrigin:
    """Where a call came from, for its audit entry: the client address, the correlation id of
    the request (always ours) and the client's own X-Request-ID, kept apart from it; the public
    id of the integration key a PSA server made the call with for the member (empty: the
    member's own credential), named in the audit entry and the usage record."""

    remote_addr: str = ""
    correlation_id: str = ""
    client_request_id: str = ""
    integration_key: str = ""


@dataclass
class AdmittedCall:
    """A call that passed every check, with its reservation held, ready to be sent."""

    membership: Membership
    spec: Feature
    zone: str
    request_id: str
    targets: list[azure.DeploymentTarget]
    messages: list[ChatMessage]
    reservation: usage.Reservation
    origin: CallOrigin
    company_id: int | None = None  # the client company the ticket belongs to (usage per company)
    started: float = field(default_factory=time.perf_counter)
    _concluded: bool = field(default=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def feature(self) -> str:
        return self.spec.slug

    def claim_conclusion(self) -> bool:
        """True exactly once: for the one path that settles and records this call."""
        with self._lock:
            if self._concluded:
                return False
            self._concluded = True
            return True


# --- the access chain -----------------------------------------------------------------------


def _feature(feature: Feature | str) -> Feature:
    try:
        return get_feature(feature)
    except ValueError:
        raise NotFound("Not found.") from None


def _membership(*, user: User | None, tenant_slug: str | None, membership: Membership | None) -> Membership:
    """Steps 1: the caller's accepted, active membership, or 401 / 404. A request resolves it
    with its credential (see `membership_resolve`) and passes it; `tenant_slug` is for
    server-side callers, which hold no credential."""
    if user is None or not user.is_authenticated:
        raise CopilotError.refusal("not_authenticated")
    if membership is None:
        if not tenant_slug:
            raise NotFound("Not found.")
        return membership_resolve(user=user, tenant_slug=tenant_slug, issued_at=None)
    if membership.user_id != user.pk or not membership.grants_access or not user.is_active:
        raise NotFound("Not found.")
    return membership


def feature_refusal(membership: Membership, feature: Feature | str) -> str | None:
    """Steps 2-7 for one feature: the code of the first refusal, or None when the caller may use it.

    Shown by the playground for each feature before any call is made.
    """
    feature = get_feature(feature)
    tenant = membership.tenant
    if not tenant.is_active:
        return "tenant_suspended"
    if not tenant.plan_includes_copilot:
        return "not_entitled"
    if not tenant.copilot_enabled:
        return "copilot_disabled"
    if not tenant.feature_enabled(feature.slug):
        return "feature_disabled"
    if not has_permission(membership, feature.permission):
        return "permission_denied"
    state = usage.copilot_access_state(membership)
    if state == "suspended":
        return "access_suspended"
    if state == "terminated":
        return "access_terminated"
    return None


def _company_id(body: object) -> int:
    value = body.get("company") if isinstance(body, Mapping) else None
    if isinstance(value, bool) or value is None or value == "":
        raise CopilotError(
            "company is required: the id of a client company in your scope.",
            code="invalid_payload", status_code=400, fields={"company": ["required"]},
        )
    text = str(value).strip() if isinstance(value, (int, str)) else ""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise CopilotError(
            "company must be a client company id.", code="invalid_payload", status_code=400,
            fields={"company": ["must be an id"]},
        )
    return int(text)


def _check_company(membership: Membership, body: object) -> int:
    """Step 8: unknown, foreign and out-of-scope companies answer alike; a deactivated company of
    the caller's scope is refused with its own code (for internal and co-managed users alike)."""
    company_id = _company_id(body)
    active = company_scope(membership=membership).get(company_id)
    if active is None:
        raise CopilotError.refusal("company_out_of_scope")
    if not active:
        raise CopilotError.refusal("company_inactive")
    return company_id


def _prepare_messages(
    spec: Feature, body: object, today: dt.date | None
) -> tuple[list[ChatMessage], PayloadError | Exception | None]:
    """Minimize and render. A payload error, or an unexpected fault of either step, is held
    until its place in the chain (after the limits), where it ends the call like any other."""
    try:
        payload = minimize_payload(body=body, today=today)
        return render_messages(feature=spec, payload=payload), None
    except PayloadError as error:
        return [], error
    except Exception as fault:  # noqa: BLE001 - held, then recorded and answered 502 after admission
        return [], fault


def _estimated_tokens(spec: Feature, messages: list[ChatMessage]) -> int:
    # About four characters per token, plus the most the answer may take.
    return sum(len(message["content"]) for message in messages) // 4 + spec.max_completion_tokens if messages else 0


def copilot_admit(
    *,
    user: User | None,
    feature: Feature | str,
    body: object,
    tenant_slug: str | None = None,
    membership: Membership | None = None,
    today: dt.date | None = None,
    origin: CallOrigin | None = None,
) -> AdmittedCall:
    """Run the access chain; reserve the limits; pick the zone's deployments; minimize and render.

    Raises `NotFound` (unknown feature, not a member) or `CopilotError` (every refusal, already
    recorded in the audit log and, from the limits on, in usage). The chain's versioned reads
    come from the request's planned reads when the API planned them (`copilot_call_reads`),
    which end with the chain.
    """
    try:
        return _admit(user=user, feature=feature, body=body, tenant_slug=tenant_slug, membership=membership,
                      today=today, origin=origin)
    finally:
        planned_reads_end()


# (tenant slug, user id) -> (membership id, zone id) of the calls this process has admitted:
# which keys the next call's access chain will read. Only a hint (a wrong one costs the chain
# its own round trips, never a wrong answer: every value is checked against its versions).
_chain_hints: BoundedMemo[tuple[str, int], tuple[int, int]] = BoundedMemo()


def copilot_call_reads(*, tenant_slug: str, user_id: int) -> list[Read]:
    """The versioned reads of the access chain of `user_id`'s next call in the tenant (after its
    membership): limits always; access state, company scope and the zone's deployments when a
    call of this process has already named the membership and zone."""
    reads = [call_limits_read(tenant_slug=tenant_slug)]
    hint = _chain_hints.get((tenant_slug, user_id))
    if hint is not None:
        membership_id, zone_id = hint
        reads += [
            usage.copilot_access_read(tenant_slug=tenant_slug, membership_id=membership_id),
            company_scope_read(tenant_slug=tenant_slug, membership_id=membership_id),
            deployments_serving_read(zone_id),
        ]
    return reads


def _admit(
    *,
    user: User | None,
    feature: Feature | str,
    body: object,
    tenant_slug: str | None,
    membership: Membership | None,
    today: dt.date | None,
    origin: CallOrigin | None,
) -> AdmittedCall:
    spec = _feature(feature)
    origin = origin or CallOrigin()
    membership = _membership(user=user, tenant_slug=tenant_slug, membership=membership)
    tenant = membership.tenant
    key = (tenant.slug, membership.user_id)
    if _chain_hints.get(key) != (membership.pk, tenant.zone_id):
        _chain_hints.remember(key, (membership.pk, tenant.zone_id))
    zone = tenant.zone.code
    request_id = uuid.uuid4().hex
    try:
        refusal = feature_refusal(membership, spec)
        if refusal:
            raise CopilotError.refusal(refusal)
        company_id = _check_company(membership, body)
    except CopilotError as error:
        _audit(membership=membership, feature=spec.slug, outcome="denied", error_code=error.code,
               origin=origin, metadata={"zone": zone, "request_id": request_id})
        _log(membership=membership, feature=spec.slug, zone=zone, request_id=request_id, code=error.code)
        raise

    messages, payload_error = _prepare_messages(spec, body, today)
    try:
        reservation = usage.limits_reserve(
            membership=membership, feature=spec.slug, estimated_tokens=_estimated_tokens(spec, messages)
        )
    except ApplicationError as refused:
        # A limit refused (429 with Retry-After), or the limits could not be checked (503).
        retry_after = getattr(refused, "retry_after", None)
        error = CopilotError(refused.message, code=refused.code, status_code=refused.status_code,
                             retry_after=retry_after if refused.status_code == 429 else None)
        _refused(membership=membership, spec=spec, zone=zone, request_id=request_id, error=error, origin=origin,
                 limit=getattr(refused, "limit", "") or "", company_id=company_id)
        raise error from None

    # Admitted: from here on, every way out settles the reservation and records the call.
    call = AdmittedCall(
        membership=membership, spec=spec, zone=zone, request_id=request_id, targets=[], messages=messages,
        reservation=reservation, origin=origin, company_id=company_id,
    )
    try:
        call.targets = deployments_for_zone(tenant.zone_id)
        if not call.targets:
            raise CopilotError.refusal("no_deployment_in_zone")
        if isinstance(payload_error, PayloadError):
            raise CopilotError(
                payload_error.message, code=payload_error.code, status_code=payload_error.http_status,
                fields={payload_error.field: [payload_error.code]},
            )
        if payload_error is not None:
            raise payload_error
    except CopilotError as error:
        if call.claim_conclusion():
            _settle(call, _Ending(outcome=UsageOutcome.REFUSED, sent=False))
            try:
                _refused(membership=membership, spec=spec, zone=zone, request_id=request_id, error=error, origin=origin,
                         company_id=company_id)
            except Exception as fault:  # noqa: BLE001 - the refusal stands; the fault is logged
                _log_fault(call, fault, stage="record")
        raise
    except Exception as fault:  # noqa: BLE001 - nothing was sent: release, record, answer 502
        raise copilot_fail(call, fault, sent=False) from None
    return call


# --- after the upstream call: one way out ---------------------------------------------------


@dataclass(frozen=True)
class _Ending:
    """How an admitted call ended: what to settle, record and answer.

    `sent`: the call may have reached Azure (False: the reservation is released);
    `keep_estimate`: the tokens used are unknown, the estimate stays counted.
    """

    outcome: str
    error_code: str = ""
    error: CopilotError | None = None
    answer: CopilotAnswer | None = None
    deployment: str = ""
    attempts: tuple[azure.Attempt, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    upstream_request_id: str = ""
    sent: bool = True
    keep_estimate: bool = False


INTERNAL_ERROR = "internal_error"
CLIENT_DISCONNECTED = "client_disconnected"


def _answered(call: AdmittedCall, result: azure.CallResult) -> _Ending:
    answer = CopilotAnswer(
        feature=call.feature, output=result.output, request_id=call.request_id, zone=call.zone,
        deployment=result.target.name, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, latency_ms=_latency_ms(call),
        template_version=call.spec.prompt_version,
    )
    return _Ending(
        outcome=UsageOutcome.OK, answer=answer, deployment=answer.deployment, attempts=result.attempts,
        prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
        upstream_request_id=result.request_id,
    )


def _failed(call: AdmittedCall, failure: azure.UpstreamFailure) -> _Ending:
    error = upstream_error(failure, request_id=call.request_id)
    return _Ending(
        outcome=UsageOutcome.FAILED, error_code=error.code, error=error,
        deployment=failure.attempts[-1].deployment if failure.attempts else "", attempts=failure.attempts,
        prompt_tokens=sum(attempt.prompt_tokens for attempt in failure.attempts),
        completion_tokens=sum(attempt.completion_tokens for attempt in failure.attempts),
        upstream_request_id=failure.request_id or "", sent=bool(failure.attempts),
    )


def _broken(call: AdmittedCall, *, sent: bool, known: _Ending | None = None) -> _Ending:
    """An unexpected fault after admission: 502 `upstream_error`, recorded as outcome `error`.

    With `known` (the call was answered, then recording it failed) its tokens are settled;
    otherwise they are unknown and the estimate is kept when anything may have been sent.
    """
    error = CopilotError(
        "The copilot call failed; it was recorded. Try again later.", code="upstream_error", status_code=502,
        extra={"request_id": call.request_id},
    )
    if known is not None:
        return _Ending(
            outcome=UsageOutcome.ERROR, error_code=INTERNAL_ERROR, error=error, deployment=known.deployment,
            attempts=known.attempts, prompt_tokens=known.prompt_tokens, completion_tokens=known.completion_tokens,
            upstream_request_id=known.upstream_request_id, sent=known.sent, keep_estimate=known.keep_estimate,
        )
    return _Ending(outcome=UsageOutcome.ERROR, error_code=INTERNAL_ERROR, error=error, sent=sent, keep_estimate=sent)


def _abandoned(call: AdmittedCall) -> _Ending:
    return _Ending(outcome=UsageOutcome.CANCELLED, error_code=CLIENT_DISCONNECTED, sent=True, keep_estimate=True)


def _conclude(call: AdmittedCall, describe: Callable[[], _Ending], *, sent_if_faulty: bool = True) -> _Ending:
    """Settle the reservation and record the call, exactly once, whatever fails on the way.

    A fault while describing the ending, or while recording it, makes the call an `error`
    (502): the reservation is still settled once, and the error recorded instead. A second
    conclusion of the same call (another path got there first) settles and records nothing.

    In this order: the settlement (Redis, once); the bookkeeping, one transaction (`_finish`;
    when it fails it is rolled back whole and the call recorded as an error instead, again in
    one transaction); then deployment health, outside any transaction (`_record_attempts`).
    """
    try:
        ending = describe()
    except Exception as fault:  # noqa: BLE001 - see the docstring
        _log_fault(call, fault, stage="conclude")
        ending = _broken(call, sent=sent_if_faulty)
    if not call.claim_conclusion():
        return ending
    _settle(call, ending)
    attempts = ending.attempts
    try:
        _finish(call, ending)
    except Exception as fault:  # noqa: BLE001 - see the docstring
        _log_fault(call, fault, stage="record")
        if ending.outcome != UsageOutcome.ERROR:
            ending = _broken(call, sent=ending.sent, known=ending)
            try:
                _finish(call, ending)
            except Exception as again:  # noqa: BLE001 - nothing more can be done than say so
                _log_fault(call, again, stage="record")
    _record_attempts(call, attempts)
    return ending


def _settle(call: AdmittedCall, ending: _Ending) -> None:
    try:
        usage.limits_settle(
            reservation=call.reservation, sent=ending.sent, prompt_tokens=ending.prompt_tokens,
            completion_tokens=ending.completion_tokens, keep_estimate=ending.keep_estimate,
        )
    except Exception as fault:  # noqa: BLE001 - limits_settle never raises; a replacement must not break the call
        _log_fault(call, fault, stage="settle")


def _record_attempts(call: AdmittedCall, attempts: tuple[azure.Attempt, ...]) -> None:
    """Deployment health, after the bookkeeping has committed and outside any transaction
    (database-side arithmetic, no `select_for_update`): the deployment's row, shared by every
    call of the zone, is never locked for a call's transaction; successes are written in
    batches (`deployment_health_record`). Best effort: a failure is logged and the call stands."""
    for attempt in attempts:
        try:
            deployment_health_record(
                name=attempt.deployment, ok=attempt.outcome == "ok", latency_ms=attempt.latency_ms,
                failure_code="" if attempt.outcome == "ok" else attempt.outcome,
            )
        except Exception as fault:  # noqa: BLE001 - health is best effort: the call stands
            _log_fault(call, fault, stage="health")


def _log_fault(call: AdmittedCall, fault: BaseException, *, stage: str) -> None:
    """Log an unexpected fault with its type and code location only: an exception's message
    may quote ticket or model text, which never reaches a log."""
    logger.error(
        "copilot call fault tenant=%s user=%s feature=%s request_id=%s stage=%s error=%s\n%s",
        call.membership.tenant.slug, call.membership.user_id, call.feature, call.request_id, stage,
        type(fault).__name__, "".join(traceback.format_tb(fault.__traceback__)).rstrip(),
    )


def _latency_ms(call: AdmittedCall) -> int:
    return int((time.perf_counter() - call.started) * 1000)


def copilot_complete(call: AdmittedCall, result: azure.CallResult) -> CopilotAnswer:
    """Record a successful call (health, limits, usage, audit) and return its answer.

    Raises `CopilotError` (502) when recording it failed (then it is recorded as an error).
    """
    ending = _conclude(call, lambda: _answered(call, result))
    if ending.answer is None:
        raise ending.error or _broken(call, sent=True).error
    return ending.answer


def copilot_fail(call: AdmittedCall, failure: BaseException, *, sent: bool = True) -> CopilotError:
    """Record a failed call and return the error the caller should raise.

    An `UpstreamFailure` is answered as the contract maps it; any other exception is an
    unexpected fault: 502 `upstream_error`, recorded as outcome `error`. `sent`: whether it
    may have reached Azure (False: the reservation is released; True: the estimate is kept).
    """

    def describe() -> _Ending:
        if isinstance(failure, azure.UpstreamFailure):
            return _failed(call, failure)
        _log_fault(call, failure, stage="call")
        return _broken(call, sent=sent)

    ending = _conclude(call, describe, sent_if_faulty=sent)
    return ending.error or _broken(call, sent=sent).error


def copilot_abandon(call: AdmittedCall) -> None:
    """The caller went away while the call was in flight: keep the estimate, record it cancelled."""
    _conclude(call, lambda: _abandoned(call))


_UPSTREAM_MESSAGES = {
    "rate_limited": "The zone's Azure OpenAI deployments are rate limited. Try again later.",
    "upstream_unavailable": "The zone's Azure OpenAI deployments are unavailable right now.",
    "upstream_timeout": "The zone's Azure OpenAI deployments did not answer in time.",
    "upstream_error": "Azure OpenAI did not return a usable answer.",
}


def upstream_error(failure: azure.UpstreamFailure, *, request_id: str) -> CopilotError:
    """The contract's error for an upstream failure (codes and names only, never content)."""
    extra: dict[str, Any] = {"request_id": request_id}
    if isinstance(failure, azure.ContentFiltered):
        extra.update(stage=failure.stage, categories=list(failure.categories))
        return CopilotError(
            f"Azure's content filter blocked the {failure.stage}.", code="content_filtered", status_code=422,
            extra=extra,
        )
    if isinstance(failure, azure.RateLimited):
        hint = failure.retry_after
        seconds = hint if isinstance(hint, (int, float)) and math.isfinite(hint) else 1
        retry_after = max(1, min(math.ceil(seconds), int(azure.MAX_RETRY_AFTER_SECONDS)))
        return CopilotError(
            _UPSTREAM_MESSAGES["rate_limited"], code="rate_limited", status_code=429, extra=extra,
            retry_after=retry_after,
        )
    message = _UPSTREAM_MESSAGES.get(failure.code, _UPSTREAM_MESSAGES["upstream_error"])
    return CopilotError(message, code=failure.code, status_code=failure.http_status, extra=extra)


# --- recording ------------------------------------------------------------------------------


def _refused(
    *, membership: Membership, spec: Feature, zone: str, request_id: str, error: CopilotError, origin: CallOrigin,
    limit: str = "", company_id: int | None = None,
) -> None:
    """A call refused after the access checks: usage (nothing sent), the strike of a refusal
    by a limit (`limit`), and audit, written together (`core.inserts.OneStatement`, as in `_finish`)."""
    metadata = {"zone": zone, "request_id": request_id, "template_version": spec.prompt_version}
    if error.retry_after is not None:
        metadata["retry_after"] = error.retry_after
    statement = OneStatement()
    _audit(membership=membership, feature=spec.slug, outcome="denied", error_code=error.code,
           origin=origin, metadata=metadata, statement=statement)
    usage.usage_record_create(
        membership=membership, feature=spec.slug, zone=zone, outcome=UsageOutcome.REFUSED,
        request_id=request_id, error_code=error.code, template_version=spec.prompt_version, limit=limit,
        company_id=company_id, integration_key=origin.integration_key, statement=statement,
    )
    statement.execute()
    _log(membership=membership, feature=spec.slug, zone=zone, request_id=request_id, code=error.code)


def _finish(call: AdmittedCall, ending: _Ending) -> None:
    """The call's bookkeeping as one unit: the audit entry, the usage record and its roll-ups
    (and any strike) commit together, or not at all. On PostgreSQL, without a strike, they are
    one statement sent outside a transaction (`core.inserts.OneStatement`): nothing in it locks
    a row shared by the tenant's calls (the audit append takes no lock; the sealer chains
    entries off the call's path), and the user's roll-up rows, shared by all of the user's
    calls in flight, stay locked only while PostgreSQL runs and commits that statement, never
    across a round trip to this process. A strike makes it one transaction: the strike first,
    then that statement."""
    latency_ms = ending.answer.latency_ms if ending.answer is not None else _latency_ms(call)
    attempts = len(ending.attempts)
    metadata = {
        "zone": call.zone, "deployment": ending.deployment, "prompt_tokens": ending.prompt_tokens,
        "completion_tokens": ending.completion_tokens, "latency_ms": latency_ms, "request_id": call.request_id,
        "template_version": call.spec.prompt_version, "attempts": attempts,
        "upstream_request_id": ending.upstream_request_id,
    }
    if ending.keep_estimate:
        metadata["estimated_tokens"] = call.reservation.estimated_tokens
    error = ending.error
    if error is not None:
        metadata.update({key: error.extra[key] for key in ("stage", "categories") if key in error.extra})
        if error.retry_after is not None:
            metadata["retry_after"] = error.retry_after
    statement = OneStatement()
    _audit(
        membership=call.membership, feature=call.feature,
        outcome="success" if ending.outcome == UsageOutcome.OK else "failure",
        error_code=ending.error_code, origin=call.origin, metadata=metadata, statement=statement,
    )
    usage.usage_record_create(
        membership=call.membership, feature=call.feature, zone=call.zone, outcome=ending.outcome,
        request_id=call.request_id, deployment=ending.deployment, attempts=attempts,
        prompt_tokens=ending.prompt_tokens, completion_tokens=ending.completion_tokens, latency_ms=latency_ms,
        error_code=ending.error_code, upstream_request_id=ending.upstream_request_id,
        template_version=call.spec.prompt_version, company_id=call.company_id,
        integration_key=call.origin.integration_key, statement=statement,
    )
    statement.execute()
    _log(
        membership=call.membership, feature=call.feature, zone=call.zone, request_id=call.request_id,
        code=ending.error_code or "ok", deployment=ending.deployment, latency_ms=latency_ms,
        prompt_tokens=ending.prompt_tokens, completion_tokens=ending.completion_tokens,
    )


def _audit(
    *, membership: Membership, feature: str, outcome: str, error_code: str, origin: CallOrigin, metadata: dict[str, Any],
    statement: OneStatement | None = None,
) -> None:
    audit_event_record(
        tenant=membership.tenant,
        actor=membership.user,
        action=AUDIT_ACTION,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=feature,
        outcome=outcome,
        metadata={
            "feature": feature, "outcome": error_code or "ok", **metadata,
            **({"integration_key": origin.integration_key} if origin.integration_key else {}),
        },
        remote_addr=origin.remote_addr or None,
        correlation_id=origin.correlation_id or None,
        client_request_id=origin.client_request_id or None,
        statement=statement,
    )


def _log(*, membership: Membership, feature: str, zone: str, request_id: str, code: str, **numbers: Any) -> None:
    logger.info(
        "copilot call tenant=%s user=%s feature=%s zone=%s outcome=%s request_id=%s%s",
        membership.tenant.slug, membership.user_id, feature, zone, code, request_id,
        "".join(f" {key}={value}" for key, value in numbers.items()),
    )


# --- the two entry points -------------------------------------------------------------------


def copilot_invoke(
    *,
    user: User | None,
    feature: Feature | str,
    body: object,
    tenant_slug: str | None = None,
    membership: Membership | None = None,
    today: dt.date | None = None,
    credential: Any = None,
    origin: CallOrigin | None = None,
) -> CopilotAnswer:
    """One copilot call, synchronously (pages, tasks, tests). See the module docstring.

    Name the tenant by `tenant_slug` (resolved for `user`) or pass the caller's `membership`.
    Raises `NotFound` or `CopilotError`.
    """
    call = copilot_admit(
        user=user, feature=feature, body=body, tenant_slug=tenant_slug, membership=membership, today=today, origin=origin
    )
    try:
        result = azure.call_with_failover(
            targets=call.targets, messages=call.messages, feature=call.spec, credential=credential,
            deadline_seconds=settings.COPILOT_CALL_DEADLINE_SECONDS,
        )
    except Exception as failure:  # noqa: BLE001 - an UpstreamFailure as mapped; anything else is a 502
        raise copilot_fail(call, failure) from None
    except BaseException:
        copilot_abandon(call)  # interrupted (the process is stopping): the estimate is kept
        raise
    return copilot_complete(call, result)


async def acopilot_invoke(
    *,
    user: User | None,
    feature: Feature | str,
    body: object,
    tenant_slug: str | None = None,
    membership: Membership | None = None,
    today: dt.date | None = None,
    credential: Any = None,
    origin: CallOrigin | None = None,
    caller_thread: bool = False,
) -> CopilotAnswer:
    """`copilot_invoke` for the event loop: the upstream wait holds no thread and no connection.

    `caller_thread`: see `run_orm`. When the task is cancelled (the client disconnected), the
    call is recorded as `cancelled` with its estimate kept; bookkeeping already under way runs
    to its end before the cancellation is passed on.
    """
    call = await run_orm_to_end(
        copilot_admit, user=user, feature=feature, body=body, tenant_slug=tenant_slug, membership=membership,
        today=today, origin=origin, caller_thread=caller_thread,
    )
    return await acopilot_send(call, credential=credential, caller_thread=caller_thread)


async def acopilot_send(call: AdmittedCall, *, credential: Any = None, caller_thread: bool = False) -> CopilotAnswer:
    """Send a call `copilot_admit` admitted and record how it ended (`acopilot_invoke` after the
    admission; the API view admits in the hop that authenticated the request). Cancelled while
    in flight: recorded `cancelled`, estimate kept, then the cancellation is passed on."""
    try:
        result = await azure.acall_with_failover(
            targets=call.targets, messages=call.messages, feature=call.spec, credential=credential,
            deadline_seconds=settings.COPILOT_CALL_DEADLINE_SECONDS,
        )
    except asyncio.CancelledError:
        await _run_to_end(run_orm(copilot_abandon, call, caller_thread=caller_thread))
        raise
    except Exception as failure:  # noqa: BLE001 - an UpstreamFailure as mapped; anything else is a 502
        failing, cancelled = await _run_to_end(run_orm(copilot_fail, call, failure, caller_thread=caller_thread))
        if cancelled:
            raise asyncio.CancelledError from None
        raise failing.result() from None
    completing, cancelled = await _run_to_end(run_orm(copilot_complete, call, result, caller_thread=caller_thread))
    if cancelled:
        raise asyncio.CancelledError
    return completing.result()


async def run_orm_to_end(
    fn: Callable[..., T], /, *args: Any, caller_thread: bool = False, admitted_by: object = None, **kwargs: Any
) -> T:
    """`run_orm` for work that admits a call (`copilot_admit`, alone or after authentication):
    a cancellation arriving meanwhile lets the work run to its end, then abandons the call it
    admitted, if any (`copilot_abandon`: recorded cancelled, estimate kept, never a reservation
    nobody settles), and is raised. An admitted call is found in the result, or, when `fn`
    admits on behalf of an object, in that object's `admitted` attribute (`admitted_by`)."""
    running, cancelled = await _run_to_end(run_orm(fn, *args, caller_thread=caller_thread, **kwargs))
    if cancelled:
        call = running.result() if running.exception() is None else None
        if not isinstance(call, AdmittedCall):
            call = getattr(admitted_by, "admitted", None)
        if call is not None:
            await _run_to_end(run_orm(copilot_abandon, call, caller_thread=caller_thread))
        raise asyncio.CancelledError
    return running.result()


async def _run_to_end(awaitable: Awaitable[T]) -> tuple[asyncio.Future[T], bool]:
    """Await `awaitable` to its end even when this task is cancelled meanwhile: the call's
    admission and bookkeeping must not be cut in half. Returns the finished future and whether
    a cancellation arrived (the caller passes it on once its own bookkeeping is done)."""
    future = asyncio.ensure_future(awaitable)
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            cancelled = True
    return future, cancelled


# --- database work from the event loop ------------------------------------------------------

_orm_pool: ThreadPoolExecutor | None = None
_orm_hop: Callable[..., Awaitable[Any]] | None = None


def _pool_hop() -> Callable[..., Awaitable[Any]]:
    """The pool and the coroutine that runs work on it: built once (per pool), not per hop."""
    global _orm_pool, _orm_hop
    if _orm_hop is None:
        _orm_pool = ThreadPoolExecutor(max_workers=settings.COPILOT_ORM_THREADS, thread_name_prefix="copilot-orm")
        _orm_hop = sync_to_async(_in_pool_thread, thread_sensitive=False, executor=_orm_pool)
    return _orm_hop


def _in_pool_thread(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    # What Django does around a request, around each hop: drop connections that broke or
    # outlived DATABASE_CONN_MAX_AGE (with the pool: hand them back to it).
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run_orm(fn: Callable[..., T], /, *args: Any, caller_thread: bool = False, **kwargs: Any) -> T:
    """Run blocking database work of an async copilot call.

    By default on the copilot's own bounded pool of threads (`COPILOT_ORM_THREADS`): the
    event loop never blocks, a call waiting for the upstream holds no thread and no database
    connection, and one process opens at most that many connections for copilot calls, however
    many calls are in flight.

    `caller_thread=True` runs it in the sync thread that entered the event loop (asgiref's
    thread-sensitive mode): right when the view runs under WSGI or Django's test client, where
    that thread already holds the request's connection and transaction.
    """
    if caller_thread:
        return await sync_to_async(fn, thread_sensitive=True)(*args, **kwargs)
    return await _pool_hop()(fn, args, kwargs)


def orm_pool_shutdown() -> None:
    """Stop the pool's threads, which closes their database connections (ASGI shutdown, tests).
    The next async call starts a new pool."""
    global _orm_pool, _orm_hop
    pool, _orm_pool, _orm_hop = _orm_pool, None, None
    if pool is not None:
        pool.shutdown(wait=True)

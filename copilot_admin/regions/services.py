"""Writes to regions: Azure deployments (platform operators only) and their health.

Configuration changes run in one transaction and record themselves in the platform's audit
log (deployments belong to no tenant) with the acting operator. Health is recorded after
every upstream attempt: it is telemetry, not configuration, and not audited. A failure is
written at once, with one UPDATE; successes are batched per process and deployment (see
`deployment_health_record`), because a deployment's row is shared by every call of its zone.
"""

import atexit
import ipaddress
import logging
import re
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from copilot_admin.access.permissions import PlatformPerm
from copilot_admin.access.policy import permission_require
from copilot_admin.audit.services import audit_change_record, audit_snapshot
from copilot_admin.core.errors import ApplicationError
from copilot_admin.regions.models import API_KEY_ENV_HELP, AuthMode, AzureDeployment, DataZone, api_key_env_allowed
from tenants.models import User

logger = logging.getLogger(__name__)

# Weight of the newest latency in the moving average.
LATENCY_EWMA_ALPHA = 0.2

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_EDITABLE = ("zone", "name", "endpoint", "deployment", "api_version", "auth_mode", "api_key_env", "priority", "active")


def _ensure_operator(actor: User) -> None:
    permission_require(actor=actor, permission=PlatformPerm.OPERATOR,
                       message="Only platform operators manage Azure deployments.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate(values: dict) -> None:
    errors: dict[str, list[str]] = {}
    parts = urlsplit(values["endpoint"])
    if parts.scheme not in ("https", "http") or not parts.hostname:
        errors["endpoint"] = ["must be an absolute https:// URL"]
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        # Plain http only reaches the local simulator; ticket data never crosses a network unencrypted.
        errors["endpoint"] = ["must use https (http is allowed only for a loopback simulator)"]
    elif parts.query or parts.fragment or parts.username or parts.password:
        errors["endpoint"] = ["must not carry credentials, a query or a fragment"]
    if not _API_VERSION.match(values["api_version"] or ""):
        errors["api_version"] = ["must look like 2024-10-21 or 2025-01-01-preview"]
    if values["auth_mode"] == AuthMode.API_KEY:
        if not api_key_env_allowed(values["api_key_env"] or ""):
            errors["api_key_env"] = [f"{API_KEY_ENV_HELP}, e.g. AZURE_OPENAI_KEY_US"]
    elif values["auth_mode"] == AuthMode.ENTRA_ID:
        values["api_key_env"] = ""
    else:
        errors["auth_mode"] = ["must be api_key or entra_id"]
    if errors:
        field = next(iter(errors))
        raise ApplicationError(f"{field}: {errors[field][0]}.", fields=errors)


def _ensure_unique_name(name: str, *, exclude_pk: int | None = None) -> None:
    taken = AzureDeployment.objects.filter(name=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ApplicationError(f"A deployment named {name!r} exists.", code="duplicate", fields={"name": ["taken"]})


@transaction.atomic
def deployment_create(
    *,
    actor: User | None,
    zone: DataZone,
    name: str,
    endpoint: str,
    deployment: str,
    api_version: str = "2024-10-21",
    auth_mode: str = AuthMode.API_KEY,
    api_key_env: str = "",
    priority: int = 100,
    active: bool = True,
) -> AzureDeployment:
    """A new deployment for `zone`. `actor` None only for the demo seed."""
    if actor is not None:
        _ensure_operator(actor)
    values = {
        "zone": zone, "name": name, "endpoint": endpoint.rstrip("/"), "deployment": deployment,
        "api_version": api_version, "auth_mode": auth_mode, "api_key_env": api_key_env,
        "priority": priority, "active": active,
    }
    _validate(values)
    _ensure_unique_name(name)
    deployment = AzureDeployment.objects.create(**values)
    audit_change_record(actor=actor, tenant=None, instance=deployment)
    return deployment


@transaction.atomic
def deployment_update(*, actor: User, azure_deployment: AzureDeployment, **changes) -> AzureDeployment:
    """Change any configuration field of `azure_deployment` (`changes` may include its
    `deployment` name); unknown fields are refused, health is not writable."""
    _ensure_operator(actor)
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise ApplicationError(f"Not editable: {', '.join(unknown)}.", fields={name: ["not editable"] for name in unknown})
    deployment = AzureDeployment.objects.select_for_update().get(pk=azure_deployment.pk)
    before = audit_snapshot(deployment)
    values = {field: changes.get(field, getattr(deployment, field)) for field in _EDITABLE}
    values["endpoint"] = values["endpoint"].rstrip("/")
    _validate(values)
    if values["name"] != deployment.name:
        _ensure_unique_name(values["name"], exclude_pk=deployment.pk)
    for field, value in values.items():
        setattr(deployment, field, value)
    deployment.save()
    audit_change_record(actor=actor, tenant=None, instance=deployment, before=before)
    return deployment


# Deployment health, precompiled: the same database-side arithmetic as an F() update, without
# compiling the ORM expression on every call. A failure moves the moving average by one
# latency; a batch of successes (`_Successes`) by its folded latencies.
_HEALTH_FAILED_SQL = (
    "UPDATE regions_azuredeployment SET last_latency_ms = %s, "
    "latency_ewma_ms = CASE WHEN latency_ewma_ms IS NULL THEN %s "
    f"ELSE latency_ewma_ms * {1 - LATENCY_EWMA_ALPHA!r} + {LATENCY_EWMA_ALPHA!r} * %s END, "
    "last_failure_at = %s, last_failure_code = %s, failure_count = failure_count + 1 WHERE name = %s"
)
_HEALTH_SUCCESSES_SQL = (
    "UPDATE regions_azuredeployment SET last_latency_ms = %s, "
    "latency_ewma_ms = CASE WHEN latency_ewma_ms IS NULL THEN %s ELSE latency_ewma_ms * %s + %s END, "
    "last_success_at = %s, success_count = success_count + %s WHERE name = %s"
)


@dataclass
class _Successes:
    """Successful attempts on one deployment not yet written, folded as one UPDATE per attempt
    would have folded them one after another: after them the moving average is
    `E * decay + folded` (or `first` when the row had none yet). `timer` writes them."""

    timer: threading.Timer | None = None
    count: int = 0
    last_latency_ms: int = 0
    decay: float = 1.0
    folded: float = 0.0
    first: float = 0.0
    last_at: object = None

    def add(self, latency_ms: int, at) -> None:
        keep = 1 - LATENCY_EWMA_ALPHA
        self.first = float(latency_ms) if self.count == 0 else self.first * keep + LATENCY_EWMA_ALPHA * latency_ms
        self.decay *= keep
        self.folded = self.folded * keep + LATENCY_EWMA_ALPHA * latency_ms
        self.count += 1
        self.last_latency_ms, self.last_at = latency_ms, at


_pending: dict[str, _Successes] = {}
_pending_lock = threading.Lock()


def deployment_health_record(*, name: str, ok: bool, latency_ms: int, failure_code: str = "") -> None:
    """Record one attempt on the deployment called `name` (a missing one is ignored).

    Database-side arithmetic, so concurrent calls and processes never lose a count, and never
    inside the caller's transaction (autocommit when it holds none), so the deployment's row,
    shared by every call of the zone, is locked for one statement at a time.

    A failure is written at once (after this process's pending successes of the deployment,
    so the row sees them in order). Successes are written in batches: the first success of a
    batch starts a timer of `DEPLOYMENT_HEALTH_FLUSH_SECONDS` (0: every success is written at
    once), and the batch is one UPDATE (count, last latency and time, the moving average as if
    updated attempt by attempt). A process that dies loses at most that long of success counts.
    """
    latency_ms = max(0, int(latency_ms))
    at = timezone.now()
    if ok:
        interval = settings.DEPLOYMENT_HEALTH_FLUSH_SECONDS
        with _pending_lock:
            batch = _pending.get(name)
            if batch is None:
                batch = _pending[name] = _Successes()
                if interval > 0:
                    batch.timer = threading.Timer(interval, _flush_in_thread, args=(name,))
                    batch.timer.daemon = True
                    batch.timer.start()
            batch.add(latency_ms, at)
        if interval == 0:
            _flush(name)
        return
    _flush(name)
    with connection.cursor() as cursor:
        cursor.execute(_HEALTH_FAILED_SQL, [
            latency_ms, float(latency_ms), latency_ms, connection.ops.adapt_datetimefield_value(at),
            (failure_code or "error")[:64], name,
        ])


def _flush(name: str) -> None:
    """Write the pending successes of deployment `name`, if any (one UPDATE)."""
    with _pending_lock:
        batch = _pending.pop(name, None)
    if batch is None:
        return
    if batch.timer is not None:
        batch.timer.cancel()  # written here: its timer has nothing left to do
    with connection.cursor() as cursor:
        cursor.execute(_HEALTH_SUCCESSES_SQL, [
            batch.last_latency_ms, batch.first, batch.decay, batch.folded,
            connection.ops.adapt_datetimefield_value(batch.last_at), batch.count, name,
        ])


def _flush_in_thread(name: str) -> None:
    # The timer's own thread: best effort, like all health; its database connection is closed
    # (back to the pool) afterwards.
    try:
        _flush(name)
    except Exception:  # telemetry: the counts of this batch are lost, and said so
        logger.exception("deployment health batch not written deployment=%s", name)
    finally:
        connection.close()


def deployment_health_flush() -> None:
    """Write every pending success batch of this process now (at exit; tests)."""
    with _pending_lock:
        names = list(_pending)
    for name in names:
        _flush(name)


@atexit.register
def _flush_at_exit() -> None:
    try:
        deployment_health_flush()
    except Exception:  # the process is ending: say so, nothing more to do
        logger.exception("deployment health batches not written at exit")

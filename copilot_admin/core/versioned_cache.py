"""Versioned reads: what every copilot call reads (its token, membership, role, tenant switches,
company scope, access state, limits, the zone's deployments) comes from the cache, and every
write to those rows makes the cached copies stale at once, so a change takes effect on the
next call.

How: each cached value is stored with the *versions* of the scopes it was read from (a tenant,
a user, or everything: `GLOBAL`). A version is a random token kept in the same cache; a write
to a row of a scope replaces its token (`scopes_bump`), and a value whose stamp no longer
matches the current tokens is read again from the database. Tokens are random, not counters,
so a version evicted or lost with the cache cannot come back to an old value.

One cache round trip per read: the value and its scopes' tokens are fetched together
(`get_many`, one MGET on Redis). A request that knows what it will read (the copilot call's
access chain) reads it all in one round trip instead: inside `planned_reads(plan)`, once the
caller's user is known (`planned_reads_fetch`), every value `plan(user_id)` names and the
versions of their scopes come in one `get_many`, and `cached` answers from that snapshot;
a value missing or stale in it is loaded and stored as always. The snapshot belongs to the
request (a context variable), is dropped by any bump the request makes, and ends with
`planned_reads_end` (the end of the access chain) or the block: the chain decides on one
consistent view read at its start (a change committed during those milliseconds takes effect
on the next call, as one committed just after a per-read MGET did).

The cache is the project's default cache: Redis when `REDIS_URL` is set (shared by every
process), the local memory cache otherwise (development: one process). In production without
Redis the versioned reads are off (`ACCESS_CACHE_SECONDS` 0): a process-local cache cannot see
another process's writes.

When a write bumps: right away (so a reader in the writer's own transaction, or one that reads
before it commits, never keeps the old value under the new token) and again once the
transaction commits (so a value read from the database between the two, the old committed
state, is dropped). A value is never stored from inside a transaction other than a test's own:
it might hold rows that are rolled back. Models register what they bump with `bump_on_change`;
writes that bypass model signals (`QuerySet.update`, `bulk_create`) must call `scopes_bump`.

When the cache cannot be reached the read goes to the database (the call does not fail), and
a bump that cannot be written is logged; `ACCESS_CACHE_SECONDS` bounds how long a copy can
outlive a lost bump.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

logger = logging.getLogger(__name__)

T = TypeVar("T")

GLOBAL = "global"


def tenant_scope(slug: str) -> str:
    """The scope of everything of one tenant (by its slug, which never changes)."""
    return f"tenant:{slug}"


def user_scope(user_id: int) -> str:
    """The scope of one user's account and credentials, across tenants."""
    return f"user:{user_id}"


def _prefix() -> str:
    return getattr(settings, "ACCESS_CACHE_KEY_PREFIX", "access:")


def _version_key(scope: str) -> str:
    return f"{_prefix()}v:{scope}"


def _seconds() -> int:
    return int(getattr(settings, "ACCESS_CACHE_SECONDS", 0))


def _storable() -> bool:
    """Outside any transaction but a test case's own (which never commits)."""
    connection = connections[DEFAULT_DB_ALIAS]
    return not any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


Read = tuple[str, Iterable[str]]
"""A versioned read: its key and scopes, as passed to `cached`."""


class _Snapshot:
    """What one request read in one round trip (`planned_reads_fetch`): the values and versions
    found, and every key asked for (a key asked for and not found is known to be missing)."""

    __slots__ = ("asked", "found", "plan")

    def __init__(self, plan: Callable[[int], Iterable[Read]]) -> None:
        self.plan = plan
        self.asked: frozenset[str] = frozenset()
        self.found: dict[str, Any] = {}

    def drop(self) -> None:
        self.asked, self.found = frozenset(), {}


# A mutable holder, set in the request's own context: the request's thread hops run in copies
# of that context and share it.
_snapshot: ContextVar[_Snapshot | None] = ContextVar("versioned_cache_snapshot", default=None)


@contextmanager
def planned_reads(plan: Callable[[int], Iterable[Read]]) -> Iterator[None]:
    """Within the block (one request), `planned_reads_fetch(user_id)` reads everything
    `plan(user_id)` names in one round trip, and `cached` answers those reads from it."""
    token = _snapshot.set(_Snapshot(plan))
    try:
        yield
    finally:
        _snapshot.reset(token)


def planned_reads_fetch(user_id: int, *also: Read) -> None:
    """The request's user is known: read the values its plan names, and `also`, with the
    versions of their scopes, in one `get_many`. Nothing when no plan is active (or the
    versioned reads are off); a cache that cannot be reached leaves the snapshot empty."""
    snapshot = _snapshot.get()
    if snapshot is None or _seconds() <= 0:
        return
    try:
        reads = [*snapshot.plan(user_id), *also]
    except Exception:  # a plan is an optimisation: each read still happens
        logger.exception("versioned cache plan failed")
        return
    keys = list(dict.fromkeys(
        name for key, scopes in reads for name in (f"{_prefix()}{key}", *map(_version_key, scopes))
    ))
    try:
        found = cache.get_many(keys)
    except Exception:  # noqa: BLE001 - each read falls back on its own
        logger.warning("versioned cache unavailable key=plan")
        return
    snapshot.asked, snapshot.found = frozenset(keys), found


def planned_reads_end() -> None:
    """The planned reads are done (the end of the access chain): later reads of the request
    go to the cache again."""
    snapshot = _snapshot.get()
    if snapshot is not None:
        snapshot.drop()


def _get_many(keys: list[str]) -> dict[str, Any]:
    """`cache.get_many`, answered from the request's snapshot when it holds all of `keys`."""
    snapshot = _snapshot.get()
    if snapshot is not None and snapshot.asked.issuperset(keys):
        return {key: snapshot.found[key] for key in keys if key in snapshot.found}
    return cache.get_many(keys)


def cached(key: str, scopes: Iterable[str], load: Callable[[], T]) -> T:
    """The value under `key`, read with `load()` when missing or stale for any of `scopes`.

    `load` must read only rows of those scopes. Values are pickled: keep them to plain data
    and model instances.
    """
    seconds = _seconds()
    if seconds <= 0:
        return load()
    full_key = f"{_prefix()}{key}"
    version_keys = [_version_key(scope) for scope in scopes]
    try:
        found = _get_many([full_key, *version_keys])
        stamp = tuple(found.get(vk) or _version_start(vk) for vk in version_keys)
        entry = found.get(full_key)
    except Exception:  # noqa: BLE001 - the cache is an optimisation: read the database
        logger.warning("versioned cache unavailable key=%s", key.split(":", 1)[0])
        return load()
    if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == stamp:
        return entry[1]
    value = load()
    if _storable():
        try:
            cache.set(full_key, (stamp, value), seconds)
        except Exception:  # noqa: BLE001 - as above
            logger.warning("versioned cache unavailable key=%s", key.split(":", 1)[0])
    return value


def cached_fact(key: str, load: Callable[[], T | None]) -> T | None:
    """A value that never changes once it exists (a token's owner), cached without versions
    for `ACCESS_CACHE_SECONDS`; None (not found) is not cached."""
    seconds = _seconds()
    if seconds <= 0:
        return load()
    full_key = f"{_prefix()}{key}"
    try:
        value = cache.get(full_key)
    except Exception:  # noqa: BLE001 - the cache is an optimisation: read the database
        return load()
    if value is None:
        value = load()
        if value is not None and _storable():
            try:
                cache.set(full_key, value, seconds)
            except Exception:  # noqa: BLE001
                logger.warning("versioned cache unavailable key=%s", key.split(":", 1)[0])
    return value


def _version_start(version_key: str) -> str:
    """A scope's first version (none yet, or lost with the cache): a new random token, unless
    another process set one meanwhile."""
    token = uuid.uuid4().hex
    if not cache.add(version_key, token, None):
        token = cache.get(version_key) or token
    snapshot = _snapshot.get()
    if snapshot is not None and version_key in snapshot.asked:
        snapshot.found[version_key] = token  # the request's other reads of the scope agree
    return token


def scopes_bump(*scopes: str) -> None:
    """Make every value read from `scopes` stale: now, and again when the current transaction
    commits (see the module docstring)."""
    scopes = tuple(dict.fromkeys(scope for scope in scopes if scope))
    if not scopes or _seconds() <= 0:
        return
    snapshot = _snapshot.get()
    if snapshot is not None:
        snapshot.drop()  # the request reads what it wrote, not its snapshot
    _bump(scopes)
    transaction.on_commit(lambda: _bump(scopes))


def _bump(scopes: tuple[str, ...]) -> None:
    try:
        cache.set_many({_version_key(scope): uuid.uuid4().hex for scope in scopes}, None)
    except Exception:  # noqa: BLE001 - logged; ACCESS_CACHE_SECONDS bounds the staleness
        logger.error("versioned cache bump failed scopes=%s", ",".join(scopes))


def bump_on_change(model: type, scopes_of: Callable[[Any], Iterable[str]], *, m2m: Iterable[Any] = ()) -> None:
    """Bump `scopes_of(instance)` whenever an instance of `model` is saved or deleted, and when
    one of its many-to-many relations (`m2m`: the `through` models) changes."""
    uid = f"versioned_cache:{model._meta.label}"

    def on_write(sender, instance, **kwargs):
        scopes_bump(*scopes_of(instance))

    def on_m2m(sender, instance, action, **kwargs):
        if action in ("post_add", "post_remove", "post_clear"):
            scopes_bump(*scopes_of(instance))

    post_save.connect(on_write, sender=model, weak=False, dispatch_uid=f"{uid}:save")
    post_delete.connect(on_write, sender=model, weak=False, dispatch_uid=f"{uid}:delete")
    for through in m2m:
        m2m_changed.connect(on_m2m, sender=through, weak=False, dispatch_uid=f"{uid}:m2m:{through._meta.label}")

"""Atomic limit counters: the engine that decides whether a copilot call is within its limits.

A caller describes every limit that applies to one call as a `LimitCheck` (for example the
user's requests per minute, hour and day, the user's tokens per day and the tenant's tokens
per day) and asks the process's backend (`get_counter_backend()`) to `reserve` it.

Windows are fixed and aligned to UTC. A window's bucket starts at
`floor(unix_time / length) * length`: minute buckets at second :00, hour buckets at :00:00,
day buckets at 00:00:00 UTC, so the daily limits reset at midnight UTC for every tenant.
Every process computes the same bucket from the same clock (servers keep time with NTP; a
skewed clock only moves calls near a boundary into the neighbouring bucket). Fixed windows
let up to twice a limit through across a boundary (L calls at 12:00:59, L more at 12:01:00):
the price of O(1) state per window.

Guarantees, for both backends:
- `reserve` is all-or-nothing and exact under concurrency: a check is admitted only if every
  window has room (`used + amount <= limit`); then every window is incremented, otherwise
  none is. N concurrent reservations of 1 against a limit L admit exactly min(N, L).
- Each reservation is one atomic step with a cost independent of history: Redis runs one Lua
  script (one round trip, keys expire one window plus a margin after their last write); the
  database locks and updates one row per window through a unique index.
- `reconcile` and `release` correct an admitted reservation's windows in the buckets they were
  reserved in, never take a counter below zero, and never raise because the store failed (they
  log instead).
- A window may carry the `name` of the limit it stands for; every result of that window
  carries it back, so a caller never has to work out from a key which limit a window was.
- When the store cannot be reached, `reserve` and `current` raise `LimitsUnavailable` (503
  `limits_unavailable`), unless the caller decides by `limits_fail_open()` to admit the call.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, models, transaction
from django.db.models import Q
from redis.backoff import NoBackoff
from redis.retry import Retry

from copilot_admin.core.errors import ApplicationError
from copilot_admin.usage.models import LimitCounter

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Returns the current Unix time in seconds; injectable so tests can move time without sleeping."""

DEFAULT_KEY_PREFIX = "copilot-admin:limits:"
# A counter outlives its window by this much so that a late reconcile or release still finds
# it; after that it is garbage (Redis expires it, `purge_expired` deletes the row).
TTL_MARGIN_SECONDS = 300
MAX_KEY_LENGTH = 150


class Window(models.TextChoices):
    """A fixed window aligned to UTC; `seconds` is its length."""

    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"
    DAY = "day", "Day"

    @property
    def seconds(self) -> int:
        return _WINDOW_SECONDS[self.value]


_WINDOW_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class LimitsUnavailable(ApplicationError):
    """The counter store could not be reached or did not answer; no limit was checked or changed.

    Callers answer 503 `limits_unavailable`, or admit the call when `limits_fail_open()` says so.
    """

    status_code = 503
    code = "limits_unavailable"

    def __init__(self, message: str = "Usage limits cannot be checked right now. Try again shortly.") -> None:
        super().__init__(message)


def limits_fail_open() -> bool:
    """Whether a call is admitted when the counters are unavailable (`USAGE_LIMITS_FAIL_OPEN`).

    Off by default: without counters no limit can be enforced, so the call is refused with 503.
    """
    return bool(getattr(settings, "USAGE_LIMITS_FAIL_OPEN", False))


@dataclass(frozen=True, slots=True)
class LimitWindow:
    """One limit: what is counted (`key`), in which window, up to what `limit`, and how much this call takes.

    `name` is the caller's name for the limit (e.g. `user_requests_per_minute`); the engine only
    carries it into the window's usage.

    `key` names the counted thing and its unit, e.g. `"u:<membership_id>:requests"` or
    `"t:<tenant_id>:tokens"`; the window kind is kept apart from it, so the same key may be
    limited per minute and per hour without the counters colliding. `amount` is what a
    reservation adds: 1 for a request counter, the estimated tokens for a token counter.
    Reads (`current`) use `amount` only to say whether such a call would be refused now.

    `subject` is whom the counter belongs to for placement, e.g. `"t:<tenant_id>"`: the
    windows of one check share it (they are reserved in one step, so in Redis Cluster they
    must live in one hash slot), and different subjects spread over the cluster. A key
    belongs to one subject. It may not contain `{` or `}` (it becomes the Redis hash tag).
    """

    key: str
    window: Window
    limit: int
    amount: int = 1
    name: str = ""
    subject: str = ""

    def __post_init__(self) -> None:
        key_ok = isinstance(self.key, str) and 0 < len(self.key) <= MAX_KEY_LENGTH and self.key == self.key.strip()
        if not key_ok:
            raise ValueError(f"A limit key is a non-empty string of at most {MAX_KEY_LENGTH} characters: {self.key!r}.")
        if not isinstance(self.subject, str) or "{" in self.subject or "}" in self.subject:
            raise ValueError(f"The subject of {self.key!r} is a string without braces: {self.subject!r}.")
        object.__setattr__(self, "window", Window(self.window))
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"limit of {self.key!r} must be an integer >= 0, got {self.limit!r}.")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise ValueError(f"amount of {self.key!r} must be an integer >= 0, got {self.amount!r}.")


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """The windows that one call must fit into, checked and reserved together, all or nothing.

    Each (key, window) appears at most once, and every window has the same `subject` (so
    that one Redis Cluster slot holds all of a check's counters).
    """

    windows: tuple[LimitWindow, ...]

    def __post_init__(self) -> None:
        windows = tuple(self.windows)
        if not windows:
            raise ValueError("A limit check needs at least one window.")
        seen = set()
        for item in windows:
            if not isinstance(item, LimitWindow):
                raise ValueError(f"A limit check holds LimitWindow items, got {item!r}.")
            if (item.key, item.window) in seen:
                raise ValueError(f"Window {item.window} of {item.key!r} appears twice in one check.")
            seen.add((item.key, item.window))
        subjects = {item.subject for item in windows}
        if len(subjects) > 1:
            raise ValueError(f"The windows of one check belong to one subject, got {sorted(subjects)!r}.")
        object.__setattr__(self, "windows", windows)


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """One window's usage as one operation saw it, inside that operation's atomic step.

    `used_before` and `used_after` bracket the operation (equal for a read or a refusal).
    `exceeded` says this window refused the amount (`used_before + amount > limit`).
    `retry_after` is the whole number of seconds, at least 1, until the window resets.
    `window_start` identifies the bucket, so a caller can keep "once per window" records.
    `name` and `subject` are as the `LimitWindow` gave them.
    """

    key: str
    window: Window
    limit: int
    amount: int
    window_start: datetime
    resets_at: datetime
    used_before: int
    used_after: int
    exceeded: bool
    retry_after: int
    name: str = ""
    subject: str = ""

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used_after)

    def percent_used(self) -> float:
        """Usage after the operation as a percentage of the limit (100.0 for a zero limit)."""
        if self.limit <= 0:
            return 100.0
        return 100.0 * self.used_after / self.limit

    def crossed(self, *, percent: int) -> bool:
        """Whether this operation moved usage from below `percent`% of the limit to at or above it.

        Reservations are serialized per window and each sees the value the previous one left,
        so while usage only grows exactly one reservation per window crosses a threshold. A
        refund (`release`, a downward `reconcile`) can let a later one cross it again; callers
        that must act once per window also record `(key, window, window_start)`.
        """
        if self.limit <= 0:
            return False
        threshold = percent * self.limit
        return self.used_before * 100 < threshold <= self.used_after * 100


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """The outcome of `reserve`: admitted or not, and every window's usage around the attempt.

    When refused, nothing was incremented; `exceeded` lists the windows that refused and
    `retry_after` is the wait (seconds) until all of them have reset. When admitted, `windows`
    is what `reconcile` and `release` take: they act on exactly the buckets reserved here.
    """

    allowed: bool
    windows: tuple[WindowUsage, ...]

    @property
    def exceeded(self) -> tuple[WindowUsage, ...]:
        return tuple(item for item in self.windows if item.exceeded)

    @property
    def retry_after(self) -> int:
        return max((item.retry_after for item in self.exceeded), default=0)

    def window(self, key: str, window: Window | str | None = None) -> WindowUsage:
        """The usage of `key` (and `window`, when the key is limited in several windows)."""
        matches = [item for item in self.windows if item.key == key and (window is None or item.window == window)]
        if len(matches) != 1:
            raise KeyError(f"{key!r} {window or ''} names {len(matches)} windows of this result.")
        return matches[0]


@dataclass(frozen=True, slots=True)
class _Bucket:
    """A window's bucket at one moment: the unit the stores lock and count."""

    key: str
    window: Window
    limit: int
    amount: int
    start: int
    name: str = ""
    subject: str = ""

    @classmethod
    def containing(cls, item: LimitWindow, *, now: float) -> _Bucket:
        length = item.window.seconds
        return cls(item.key, item.window, item.limit, item.amount, int(now // length) * length, item.name, item.subject)

    @classmethod
    def of(cls, usage: WindowUsage) -> _Bucket:
        return cls(usage.key, usage.window, usage.limit, usage.amount, int(usage.window_start.timestamp()), usage.name, usage.subject)

    @property
    def end(self) -> int:
        return self.start + self.window.seconds

    @property
    def ttl(self) -> int:
        return self.window.seconds + TTL_MARGIN_SECONDS

    def usage(self, *, now: float, before: int, after: int, exceeded: bool) -> WindowUsage:
        return WindowUsage(
            key=self.key,
            window=self.window,
            limit=self.limit,
            amount=self.amount,
            window_start=datetime.fromtimestamp(self.start, tz=UTC),
            resets_at=datetime.fromtimestamp(self.end, tz=UTC),
            used_before=before,
            used_after=after,
            exceeded=exceeded,
            retry_after=max(1, math.ceil(self.end - now)),
            name=self.name,
            subject=self.subject,
        )


def _admitted(windows: Sequence[WindowUsage]) -> bool:
    """Whether `windows` are those of an admitted reservation: a refused one has an exceeded window."""
    return not any(item.exceeded for item in windows)


class CounterBackend(ABC):
    """The one interface both counter stores implement; see the module docstring for guarantees."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock

    def now(self) -> float:
        """The Unix time this backend buckets by (its clock)."""
        return self._clock()

    def reserve(self, *, check: LimitCheck) -> ReserveResult:
        """Reserve every window's amount in the current buckets, atomically, all or nothing.

        Raises `LimitsUnavailable` when the store fails; then nothing was reserved.
        """
        now = self._clock()
        buckets = [_Bucket.containing(item, now=now) for item in check.windows]
        allowed, befores, exceeded = self._reserve(buckets)
        return ReserveResult(
            allowed=allowed,
            windows=tuple(
                bucket.usage(now=now, before=before, after=before + bucket.amount if allowed else before, exceeded=hit)
                for bucket, before, hit in zip(buckets, befores, exceeded, strict=True)
            ),
        )

    def reconcile(self, *, windows: Sequence[WindowUsage], actual: Mapping[str, int]) -> tuple[WindowUsage, ...]:
        """After the call: set the named windows to what it really cost instead of the estimate.

        `windows` are an admitted reservation's (`ReserveResult.windows`); `actual` maps a key
        of them to the real amount (e.g. total tokens); each such window changes by
        `actual - reserved` in the bucket it was reserved in (even if that window has since
        rolled over), and never below zero. Windows not named stay. Returns the adjusted
        windows (before/after, for threshold checks); the windows of a refused reservation
        (one of them `exceeded`: nothing was reserved), or a store failure (logged), adjust
        nothing and return `()`. Raises `ValueError` only for a key that is not among the
        windows or a negative amount.
        """
        by_key: dict[str, list[WindowUsage]] = {}
        for item in windows:
            by_key.setdefault(item.key, []).append(item)
        changes: list[tuple[_Bucket, int]] = []
        for key, amount in actual.items():
            if key not in by_key:
                raise ValueError(f"{key!r} is not a window of this reservation.")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise ValueError(f"The actual amount of {key!r} must be an integer >= 0, got {amount!r}.")
            for item in by_key[key]:
                if amount != item.amount:
                    changes.append((_Bucket.of(item), amount - item.amount))
        if not _admitted(windows) or not changes:
            return ()
        return self._adjust_quietly(changes, operation="reconcile")

    def release(self, *, windows: Sequence[WindowUsage]) -> None:
        """Refund a reservation (the upstream call failed): subtract every amount it added.

        `windows` are an admitted reservation's; acts on the buckets they were reserved in,
        never below zero. Call it at most once per reservation. The windows of a refused
        reservation are a no-op; a store failure is logged.
        """
        if not _admitted(windows):
            return
        changes = [(_Bucket.of(item), -item.amount) for item in windows if item.amount]
        if changes:
            self._adjust_quietly(changes, operation="release")

    def current(self, *, windows: Sequence[LimitWindow]) -> tuple[WindowUsage, ...]:
        """Read the current bucket of each window, in one round trip, changing nothing.

        `used_before == used_after` is the usage now; `exceeded` says whether a reservation of
        the window's `amount` would be refused now. Raises `LimitsUnavailable` when the store fails.
        """
        now = self._clock()
        buckets = [_Bucket.containing(item, now=now) for item in windows]
        if not buckets:
            return ()
        used = self._read(buckets)
        return tuple(
            bucket.usage(now=now, before=value, after=value, exceeded=value + bucket.amount > bucket.limit)
            for bucket, value in zip(buckets, used, strict=True)
        )

    def _adjust_quietly(self, changes: list[tuple[_Bucket, int]], *, operation: str) -> tuple[WindowUsage, ...]:
        now = self._clock()
        try:
            values = self._adjust(changes)
        except Exception:
            # The call itself already happened; a lost correction only skews one window, which
            # is better than failing the caller. The log says which counters were not corrected.
            logger.exception(
                "Limit counters: %s not applied to %s.",
                operation,
                ", ".join(f"{bucket.key}/{bucket.window}" for bucket, _ in changes),
            )
            return ()
        return tuple(
            bucket.usage(now=now, before=before, after=after, exceeded=False)
            for (bucket, _), (before, after) in zip(changes, values, strict=True)
        )

    @abstractmethod
    def _reserve(self, buckets: list[_Bucket]) -> tuple[bool, list[int], list[bool]]:
        """Atomically: read each bucket; if all have room add each amount. Returns (admitted, before, exceeded)."""

    @abstractmethod
    def _adjust(self, changes: list[tuple[_Bucket, int]]) -> list[tuple[int, int]]:
        """Atomically add each delta, flooring at zero. Returns (before, after) per change."""

    @abstractmethod
    def _read(self, buckets: list[_Bucket]) -> list[int]:
        """The used value of each bucket (0 when absent)."""


# KEYS[i]: window i's counter (the bucket start is part of the key).
# ARGV[3i-2], ARGV[3i-1], ARGV[3i]: window i's limit, amount, and TTL in seconds.
# Returns {admitted, used_before_1, exceeded_1, ..., used_before_n, exceeded_n}; Redis runs the
# whole script without interleaving any other command, which makes the check-and-add atomic.
_RESERVE_LUA = """
local used = redis.call('MGET', unpack(KEYS))
local result = {1}
for i = 1, #KEYS do
  local before = tonumber(used[i]) or 0
  local exceeded = 0
  if before + tonumber(ARGV[3 * i - 1]) > tonumber(ARGV[3 * i - 2]) then
    exceeded = 1
    result[1] = 0
  end
  result[2 * i] = before
  result[2 * i + 1] = exceeded
end
if result[1] == 1 then
  for i = 1, #KEYS do
    local amount = tonumber(ARGV[3 * i - 1])
    if amount > 0 then
      redis.call('INCRBY', KEYS[i], amount)
      redis.call('EXPIRE', KEYS[i], ARGV[3 * i])
    end
  end
end
return result
"""

# KEYS[i]: a counter; ARGV[2i-1], ARGV[2i]: the delta to add and the TTL should the key be new.
# Returns {before_1, after_1, ...}; a counter never goes below zero.
_ADJUST_LUA = """
local result = {}
for i = 1, #KEYS do
  local before = tonumber(redis.call('GET', KEYS[i])) or 0
  local after = before + tonumber(ARGV[2 * i - 1])
  if after < 0 then
    after = 0
  end
  if after ~= before then
    local existed = redis.call('EXISTS', KEYS[i])
    redis.call('INCRBY', KEYS[i], after - before)
    if existed == 0 then
      redis.call('EXPIRE', KEYS[i], ARGV[2 * i])
    end
  end
  result[2 * i - 1] = before
  result[2 * i] = after
end
return result
"""


def _safe_location(url: str) -> str:
    """host:port/db of a Redis URL, without credentials, for log lines."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.hostname or '?'}:{parts.port or 6379}{parts.path or ''}"


class RedisCounterBackend(CounterBackend):
    """Counters in Redis: one Lua script per reservation, one round trip, keys with a TTL.

    Key layout: `<prefix>{<subject>}:<window>:<bucket start, unix seconds>:<key>`. The braces
    are a Redis Cluster hash tag: a check's windows share one subject (`LimitCheck`), so every
    key one script touches (reserve, reconcile, release, read) hashes to one slot, while
    different subjects (tenants) spread over the slots; the counters work unchanged on one
    Redis or a cluster. Neither the prefix nor the subject may contain a brace, so the tag is
    always the first `{...}` of the key and nothing in `key` can move it.
    This layout replaced `<prefix><window>:<bucket start>:<key>`: deploying it starts the
    windows open at that moment from zero once (old keys are not read; they expire by TTL).
    The client does not retry a command that timed out (it may have run: a retry could count
    a call twice); it retries once on a broken pooled connection.
    """

    def __init__(
        self,
        *,
        url: str,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        socket_timeout: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(clock=clock)
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError(f"A Redis key prefix may not contain braces (they mark the hash tag): {key_prefix!r}.")
        self._prefix = key_prefix
        self._location = _safe_location(url)
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=socket_timeout,
            socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            health_check_interval=30,
        )
        self._reserve_script = self._client.register_script(_RESERVE_LUA)
        self._adjust_script = self._client.register_script(_ADJUST_LUA)

    @property
    def client(self) -> redis.Redis:
        return self._client

    def storage_key(self, *, key: str, window: Window, window_start: int, subject: str = "") -> str:
        """The Redis key of one bucket; `{subject}` is its hash tag (see the class docstring)."""
        return f"{self._prefix}{{{subject}}}:{window}:{window_start}:{key}"

    def _key(self, bucket: _Bucket) -> str:
        return self.storage_key(key=bucket.key, window=bucket.window, window_start=bucket.start, subject=bucket.subject)

    def _run(self, operation: str, call: Callable[[], list]) -> list:
        try:
            return call()
        except redis.RedisError as exc:
            logger.error(
                "Limit counters unavailable: %s on Redis at %s failed: %s: %s",
                operation,
                self._location,
                type(exc).__name__,
                str(exc)[:200],
            )
            raise LimitsUnavailable() from exc

    def _reserve(self, buckets: list[_Bucket]) -> tuple[bool, list[int], list[bool]]:
        args: list[int] = []
        for bucket in buckets:
            args += [bucket.limit, bucket.amount, bucket.ttl]
        reply = self._run("reserve", lambda: self._reserve_script(keys=[self._key(b) for b in buckets], args=args))
        return bool(reply[0]), [int(v) for v in reply[1::2]], [bool(v) for v in reply[2::2]]

    def _adjust(self, changes: list[tuple[_Bucket, int]]) -> list[tuple[int, int]]:
        args: list[int] = []
        for bucket, delta in changes:
            args += [delta, bucket.ttl]
        reply = self._run("adjust", lambda: self._adjust_script(keys=[self._key(b) for b, _ in changes], args=args))
        return [(int(reply[i]), int(reply[i + 1])) for i in range(0, len(reply), 2)]

    def _read(self, buckets: list[_Bucket]) -> list[int]:
        reply = self._run("read", lambda: self._client.mget([self._key(b) for b in buckets]))
        return [int(v) if v is not None else 0 for v in reply]


class _Contention(Exception):
    """A counter row changed between our read and our write; the attempt is retried."""


# SQLite admits one writer at a time and its busy handler polls with growing sleeps, so with
# many threads some waiters starve. Within one process (`make run`) writers queue on this lock
# instead; other processes still meet SQLite's own lock and the retries.
_SQLITE_WRITERS = threading.Lock()


class DatabaseCounterBackend(CounterBackend):
    """Counters in the `LimitCounter` table; for `make run` (SQLite) and deployments without Redis.

    One transaction per operation: it first inserts the missing bucket rows (INSERT ... ON
    CONFLICT DO NOTHING: a write, so SQLite takes its write lock before reading and never has
    to upgrade a read lock), then locks the rows with SELECT ... FOR UPDATE in key order (so
    PostgreSQL transactions over overlapping windows cannot deadlock), checks every limit, and
    writes each new value with a compare-and-set UPDATE (`WHERE used = <value read>`). Lock
    timeouts, deadlocks and SQLite's "database is locked" retry the whole transaction with
    jittered backoff until `lock_timeout` seconds have passed; then `LimitsUnavailable`. On
    SQLite, the writers of one process also take turns on a process-wide lock.

    Call it outside a surrounding transaction: inside one, the row locks are held until that
    transaction ends and a rollback there also undoes the reservation.
    """

    def __init__(self, *, using: str = DEFAULT_DB_ALIAS, lock_timeout: float = 10.0, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self._using = using
        self._lock_timeout = lock_timeout

    @staticmethod
    def storage_key(*, key: str, window: Window) -> str:
        """The `LimitCounter.key` of a limit key in a window (the bucket is `window_start`)."""
        return f"{window}:{key}"

    def _retrying(self, operation: str, attempt: Callable[[], object], *, writes: bool = True):
        deadline = time.monotonic() + self._lock_timeout
        queue = _SQLITE_WRITERS if writes and connections[self._using].vendor == "sqlite" else None
        pause = 0.001
        while True:
            try:
                if queue is None:
                    return attempt()
                if not queue.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    raise OperationalError("timed out waiting for this process's other SQLite writers")
                try:
                    return attempt()
                finally:
                    queue.release()
            except (OperationalError, _Contention) as exc:
                if time.monotonic() >= deadline:
                    logger.error(
                        "Limit counters unavailable: %s on the database gave up after %.1fs: %s: %s",
                        operation,
                        self._lock_timeout,
                        type(exc).__name__,
                        str(exc)[:200],
                    )
                    raise LimitsUnavailable() from exc
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.05)

    def _locked_rows(self, buckets: list[_Bucket]) -> dict[str, tuple[int, int]]:
        """Inside a transaction: ensure and lock the buckets' rows; storage key -> (pk, used)."""
        manager = LimitCounter.objects.db_manager(self._using)
        ordered = sorted(buckets, key=lambda b: self.storage_key(key=b.key, window=b.window))
        manager.bulk_create(
            [
                LimitCounter(
                    key=self.storage_key(key=b.key, window=b.window),
                    window_start=datetime.fromtimestamp(b.start, tz=UTC),
                    used=0,
                    expires_at=datetime.fromtimestamp(b.end + TTL_MARGIN_SECONDS, tz=UTC),
                )
                for b in ordered
            ],
            ignore_conflicts=True,
        )
        match = Q()
        for b in ordered:
            start = datetime.fromtimestamp(b.start, tz=UTC)
            match |= Q(key=self.storage_key(key=b.key, window=b.window), window_start=start)
        rows = (
            manager.select_for_update()
            .filter(match)
            .order_by("key", "window_start")
            .values_list("pk", "key", "used")
        )
        found = {key: (pk, used) for pk, key, used in rows}
        if len(found) != len(buckets):
            raise _Contention("a counter row vanished (purged?) between insert and lock")
        return found

    def _compare_and_set(self, pk: int, *, seen: int, value: int) -> None:
        updated = LimitCounter.objects.db_manager(self._using).filter(pk=pk, used=seen).update(used=value)
        if updated != 1:
            raise _Contention(f"counter {pk} changed under its lock")

    def _reserve(self, buckets: list[_Bucket]) -> tuple[bool, list[int], list[bool]]:
        def attempt() -> tuple[bool, list[int], list[bool]]:
            with transaction.atomic(using=self._using):
                rows = self._locked_rows(buckets)
                befores = [rows[self.storage_key(key=b.key, window=b.window)][1] for b in buckets]
                exceeded = [before + b.amount > b.limit for b, before in zip(buckets, befores, strict=True)]
                allowed = not any(exceeded)
                if allowed:
                    for b, before in zip(buckets, befores, strict=True):
                        if b.amount:
                            pk = rows[self.storage_key(key=b.key, window=b.window)][0]
                            self._compare_and_set(pk, seen=before, value=before + b.amount)
                return allowed, befores, exceeded

        return self._retrying("reserve", attempt)

    def _adjust(self, changes: list[tuple[_Bucket, int]]) -> list[tuple[int, int]]:
        def attempt() -> list[tuple[int, int]]:
            with transaction.atomic(using=self._using):
                rows = self._locked_rows([bucket for bucket, _ in changes])
                values = []
                for bucket, delta in changes:
                    pk, before = rows[self.storage_key(key=bucket.key, window=bucket.window)]
                    after = max(0, before + delta)
                    if after != before:
                        self._compare_and_set(pk, seen=before, value=after)
                    values.append((before, after))
                return values

        return self._retrying("adjust", attempt)

    def _read(self, buckets: list[_Bucket]) -> list[int]:
        def attempt() -> list[int]:
            keys = {self.storage_key(key=b.key, window=b.window) for b in buckets}
            starts = {datetime.fromtimestamp(b.start, tz=UTC) for b in buckets}
            rows = (
                LimitCounter.objects.db_manager(self._using)
                .filter(key__in=keys, window_start__in=starts)
                .values_list("key", "window_start", "used")
            )
            used = {(key, int(start.timestamp())): value for key, start, value in rows}
            return [used.get((self.storage_key(key=b.key, window=b.window), b.start), 0) for b in buckets]

        return self._retrying("read", attempt, writes=False)

    def purge_expired(self) -> int:
        """Delete counters whose window ended more than the margin ago; returns how many went."""
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        deleted, _ = LimitCounter.objects.db_manager(self._using).filter(expires_at__lt=now).delete()
        return deleted


def get_counter_backend() -> CounterBackend:
    """The process's counter backend: Redis when `settings.REDIS_URL` is set, else the database.

    One instance per configuration, shared by all threads (both backends are thread-safe).
    """
    return _backend_for(
        redis_url=getattr(settings, "REDIS_URL", "") or "",
        key_prefix=getattr(settings, "USAGE_LIMITS_KEY_PREFIX", DEFAULT_KEY_PREFIX),
    )


@lru_cache(maxsize=4)
def _backend_for(*, redis_url: str, key_prefix: str) -> CounterBackend:
    if redis_url:
        return RedisCounterBackend(url=redis_url, key_prefix=key_prefix)
    return DatabaseCounterBackend()

"""The limit counter engine: exact under concurrency, all-or-nothing, UTC windows, both backends."""

import logging
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis.connection
from django.db import OperationalError, connections
from redis.crc import key_slot

from copilot_admin.usage import admission
from copilot_admin.usage.counters import (
    TTL_MARGIN_SECONDS,
    DatabaseCounterBackend,
    LimitCheck,
    LimitsUnavailable,
    LimitWindow,
    RedisCounterBackend,
    ReserveResult,
    Window,
    WindowUsage,
    get_counter_backend,
    limits_fail_open,
)
from copilot_admin.usage.limits import EffectiveLimits
from copilot_admin.usage.models import LimitCounter
from tenants.models import Membership


def requests_per(window: Window, limit: int, *, key: str = "u:1:requests") -> LimitWindow:
    return LimitWindow(key=key, window=window, limit=limit, amount=1)


def tokens_per_day(limit: int, amount: int, *, key: str = "t:1:tokens") -> LimitWindow:
    return LimitWindow(key=key, window=Window.DAY, limit=limit, amount=amount)


def check(*windows: LimitWindow) -> LimitCheck:
    return LimitCheck(windows=windows)


def used(backend, *windows: LimitWindow) -> list[int]:
    return [item.used_after for item in backend.current(windows=windows)]


def run_concurrently(count: int, work) -> list:
    """Run `work(i)` in `count` threads released together; return the results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    assert not errors, errors
    return results


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def a_call(*, tenant_id: int = 3, membership_id: int = 7, limit: int = 1000) -> tuple[Membership, EffectiveLimits]:
    """An (unsaved) membership and limits, enough for `admission.reserve`/`settle` against a counter backend."""
    membership = Membership(pk=membership_id, tenant_id=tenant_id)
    limits = EffectiveLimits(**{name: limit for name in EffectiveLimits.__dataclass_fields__})
    return membership, limits


class RecordingClient:
    """Records every command a Redis client sends (one `execute_command` is one round trip)."""

    def __init__(self, client, monkeypatch) -> None:
        self.commands: list[tuple] = []
        original = client.execute_command

        def recording(*args, **kwargs):
            self.commands.append(args)
            return original(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", recording)

    def take(self) -> list[tuple]:
        taken, self.commands = self.commands, []
        return taken


def script_keys(command: tuple) -> list[str]:
    """The KEYS of an EVALSHA/EVAL command."""
    count = int(command[2])
    return [k.decode() if isinstance(k, bytes) else k for k in command[3 : 3 + count]]


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the first `{...}` of the key."""
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


class TestInput:
    def test_window_lengths(self):
        assert (Window.MINUTE.seconds, Window.HOUR.seconds, Window.DAY.seconds) == (60, 3600, 86400)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"key": "", "window": Window.MINUTE, "limit": 1},
            {"key": " padded", "window": Window.MINUTE, "limit": 1},
            {"key": "k" * 151, "window": Window.MINUTE, "limit": 1},
            {"key": "k", "window": "fortnight", "limit": 1},
            {"key": "k", "window": Window.MINUTE, "limit": -1},
            {"key": "k", "window": Window.MINUTE, "limit": 1.5},
            {"key": "k", "window": Window.MINUTE, "limit": 1, "amount": -1},
            {"key": "k", "window": Window.MINUTE, "limit": True},
        ],
    )
    def test_bad_window_is_refused(self, kwargs):
        with pytest.raises(ValueError):
            LimitWindow(**kwargs)

    def test_window_kind_accepts_its_value(self):
        assert LimitWindow(key="k", window="hour", limit=1).window is Window.HOUR

    def test_check_needs_windows_and_no_duplicates(self):
        with pytest.raises(ValueError):
            LimitCheck(windows=[])
        with pytest.raises(ValueError):
            check(requests_per(Window.MINUTE, 1), requests_per(Window.MINUTE, 2))
        # The same key in two window kinds is two different limits.
        assert len(check(requests_per(Window.MINUTE, 1), requests_per(Window.HOUR, 2)).windows) == 2


    def test_subjects_have_no_braces_and_one_check_has_one_subject(self):
        for subject in ("t:{1}", "t:1}", "{"):
            with pytest.raises(ValueError):
                LimitWindow(key="k", window=Window.DAY, limit=1, subject=subject)
        with pytest.raises(ValueError):
            LimitCheck(
                windows=(
                    LimitWindow(key="u:1:tokens", window=Window.DAY, limit=1, subject="t:1"),
                    LimitWindow(key="t:2:tokens", window=Window.DAY, limit=1, subject="t:2"),
                )
            )

    def test_a_call_s_windows_all_belong_to_its_tenant(self):
        membership, limits = a_call(tenant_id=3, membership_id=7)
        windows = admission.call_check(membership=membership, limits=limits, estimated_tokens=5).windows
        assert len(windows) == 5
        assert {item.subject for item in windows} == {"t:3"}


class TestBehaviour:
    """Every test here runs against Redis and against the database."""

    def test_admits_up_to_the_limit_then_refuses_without_counting(self, backend):
        limit = requests_per(Window.MINUTE, 3)
        outcomes = [backend.reserve(check=check(limit)).allowed for _ in range(5)]
        assert outcomes == [True, True, True, False, False]
        assert used(backend, limit) == [3]

    def test_result_brackets_each_reservation(self, backend):
        limit = tokens_per_day(100, 40)
        first = backend.reserve(check=check(limit)).window("t:1:tokens")
        second = backend.reserve(check=check(limit)).window("t:1:tokens")
        refused = backend.reserve(check=check(limit))
        assert (first.used_before, first.used_after, second.used_before, second.used_after) == (0, 40, 40, 80)
        assert not refused.allowed
        assert (refused.windows[0].used_before, refused.windows[0].used_after) == (80, 80)
        assert refused.windows[0].exceeded
        assert second.remaining == 20

    def test_every_result_names_the_limit_its_window_stands_for(self, backend):
        minute = LimitWindow(key="u:1:requests", window=Window.MINUTE, limit=5, name="user_requests_per_minute")
        tokens = LimitWindow(key="u:1:tokens", window=Window.DAY, limit=50, amount=40, name="user_tokens_per_day")
        admitted = backend.reserve(check=check(minute, tokens))
        refused = backend.reserve(check=check(minute, tokens))
        assert [item.name for item in admitted.windows] == ["user_requests_per_minute", "user_tokens_per_day"]
        assert [item.name for item in refused.exceeded] == ["user_tokens_per_day"]
        assert [item.name for item in backend.current(windows=[tokens])] == ["user_tokens_per_day"]
        (moved,) = backend.reconcile(windows=admitted.windows, actual={"u:1:tokens": 10})
        assert (moved.name, moved.used_after) == ("user_tokens_per_day", 10)

    def test_windows_are_utc_aligned_buckets_with_retry_after(self, backend, clock):
        clock.set(datetime(2026, 11, 20, 10, 17, 42, 300000, tzinfo=UTC))
        result = backend.reserve(
            check=check(requests_per(Window.MINUTE, 5), requests_per(Window.HOUR, 5), requests_per(Window.DAY, 5))
        )
        minute, hour, day = result.windows
        assert minute.window_start == datetime(2026, 11, 20, 10, 17, tzinfo=UTC)
        assert minute.resets_at == datetime(2026, 11, 20, 10, 18, tzinfo=UTC)
        assert hour.window_start == datetime(2026, 11, 20, 10, tzinfo=UTC)
        assert day.window_start == datetime(2026, 11, 20, tzinfo=UTC)
        assert day.resets_at == datetime(2026, 11, 21, tzinfo=UTC)
        # Seconds until the reset, rounded up: 17.7 -> 18; 42m17.7s -> 2538; 13h42m17.7s -> 49338.
        assert (minute.retry_after, hour.retry_after, day.retry_after) == (18, 2538, 49338)

    def test_all_or_nothing_across_windows(self, backend):
        per_minute = requests_per(Window.MINUTE, 10)
        per_hour = requests_per(Window.HOUR, 10)
        tokens = tokens_per_day(1000, 600)
        assert backend.reserve(check=check(per_minute, per_hour, tokens)).allowed
        refused = backend.reserve(check=check(per_minute, per_hour, tokens))
        assert not refused.allowed
        assert [item.key for item in refused.exceeded] == ["t:1:tokens"]
        assert refused.retry_after == refused.window("t:1:tokens").retry_after
        # The request windows had room, yet were not counted for the refused call.
        assert used(backend, per_minute, per_hour, tokens) == [1, 1, 600]

    def test_retry_after_waits_for_every_exceeded_window(self, backend, clock):
        clock.set(datetime(2026, 11, 20, 10, 59, 30, tzinfo=UTC))
        per_minute = requests_per(Window.MINUTE, 1)
        per_hour = requests_per(Window.HOUR, 1)
        per_day = requests_per(Window.DAY, 100)
        assert backend.reserve(check=check(per_minute, per_hour, per_day)).allowed
        refused = backend.reserve(check=check(per_minute, per_hour, per_day))
        assert {item.window for item in refused.exceeded} == {Window.MINUTE, Window.HOUR}
        assert refused.retry_after == 30
        clock.set(datetime(2026, 11, 20, 10, 59, 59, tzinfo=UTC))
        assert backend.reserve(check=check(per_minute, per_hour, per_day)).retry_after == 1

    def test_minute_window_rolls_over_without_sleeping(self, backend, clock):
        clock.set(datetime(2026, 11, 20, 10, 17, 0, tzinfo=UTC))
        per_minute = requests_per(Window.MINUTE, 2)
        per_hour = requests_per(Window.HOUR, 3)
        assert backend.reserve(check=check(per_minute, per_hour)).allowed
        assert backend.reserve(check=check(per_minute, per_hour)).allowed
        clock.advance(59.9)
        refused = backend.reserve(check=check(per_minute, per_hour))
        assert not refused.allowed and refused.retry_after == 1
        clock.set(datetime(2026, 11, 20, 10, 18, 0, tzinfo=UTC))
        assert backend.reserve(check=check(per_minute, per_hour)).allowed
        # The hour window did not roll over: it is now full.
        refused = backend.reserve(check=check(per_minute, per_hour))
        assert [item.window for item in refused.exceeded] == [Window.HOUR]
        assert refused.retry_after == 42 * 60

    def test_day_resets_at_midnight_utc(self, backend, clock):
        clock.set(datetime(2026, 11, 20, 23, 59, 59, 500000, tzinfo=UTC))
        tokens = tokens_per_day(100, 100)
        assert backend.reserve(check=check(tokens)).allowed
        refused = backend.reserve(check=check(tokens))
        assert not refused.allowed and refused.retry_after == 1
        clock.advance(0.5)
        admitted = backend.reserve(check=check(tokens))
        assert admitted.allowed
        assert admitted.windows[0].window_start == datetime(2026, 11, 21, tzinfo=UTC)

    def test_same_key_in_two_windows_counts_separately(self, backend, clock):
        per_minute = requests_per(Window.MINUTE, 2)
        per_hour = requests_per(Window.HOUR, 5)
        for _ in range(2):
            assert backend.reserve(check=check(per_minute, per_hour)).allowed
        clock.advance(60)
        assert used(backend, per_minute, per_hour) == [0, 2]

    def test_different_keys_do_not_share_counters(self, backend):
        alice = requests_per(Window.MINUTE, 1, key="u:1:requests")
        bob = requests_per(Window.MINUTE, 1, key="u:2:requests")
        assert backend.reserve(check=check(alice)).allowed
        assert backend.reserve(check=check(bob)).allowed
        assert not backend.reserve(check=check(alice)).allowed

    def test_zero_limit_refuses_everything(self, backend):
        assert not backend.reserve(check=check(requests_per(Window.DAY, 0))).allowed

    def test_zero_amount_is_checked_but_not_counted(self, backend):
        tokens = tokens_per_day(10, 0)
        assert backend.reserve(check=check(tokens)).allowed
        assert used(backend, tokens) == [0]

    def test_reconcile_moves_a_token_window_to_the_actual_cost(self, backend):
        per_minute = requests_per(Window.MINUTE, 10)
        tokens = tokens_per_day(1000, 300)
        reservation = backend.reserve(check=check(per_minute, tokens))
        adjusted = backend.reconcile(windows=reservation.windows, actual={"t:1:tokens": 120})
        assert [(item.key, item.used_before, item.used_after) for item in adjusted] == [("t:1:tokens", 300, 120)]
        assert used(backend, per_minute, tokens) == [1, 120]
        second = backend.reserve(check=check(per_minute, tokens))
        adjusted = backend.reconcile(windows=second.windows, actual={"t:1:tokens": 950})
        assert (adjusted[0].used_before, adjusted[0].used_after) == (420, 1070)
        # Above the limit after a costly call: the next call waits for the window to reset.
        assert not backend.reserve(check=check(per_minute, tokens_per_day(1000, 1))).allowed

    def test_reconcile_never_goes_below_zero(self, backend):
        tokens = tokens_per_day(1000, 300)
        reservation = backend.reserve(check=check(tokens))
        backend.reconcile(windows=reservation.windows, actual={"t:1:tokens": 0})
        again = backend.reconcile(windows=reservation.windows, actual={"t:1:tokens": 0})
        assert (again[0].used_before, again[0].used_after) == (0, 0)
        assert used(backend, tokens) == [0]

    def test_reconcile_applies_to_the_bucket_it_reserved_in(self, backend, clock):
        clock.set(datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC))
        tokens = tokens_per_day(1000, 300)
        reservation = backend.reserve(check=check(tokens))
        clock.advance(5)
        backend.reconcile(windows=reservation.windows, actual={"t:1:tokens": 100})
        assert used(backend, tokens) == [0]
        clock.advance(-5)
        assert used(backend, tokens) == [100]

    def test_reconcile_of_a_refused_reservation_changes_nothing(self, backend):
        tokens = tokens_per_day(100, 100)
        backend.reserve(check=check(tokens))
        refused = backend.reserve(check=check(tokens))
        assert backend.reconcile(windows=refused.windows, actual={"t:1:tokens": 1}) == ()
        assert used(backend, tokens) == [100]

    def test_reconcile_rejects_keys_it_did_not_reserve(self, backend):
        reservation = backend.reserve(check=check(tokens_per_day(100, 10)))
        with pytest.raises(ValueError):
            backend.reconcile(windows=reservation.windows, actual={"t:2:tokens": 5})
        with pytest.raises(ValueError):
            backend.reconcile(windows=reservation.windows, actual={"t:1:tokens": -5})

    def test_release_refunds_every_window(self, backend):
        per_minute = requests_per(Window.MINUTE, 1)
        tokens = tokens_per_day(1000, 300)
        kept = backend.reserve(check=check(tokens_per_day(1000, 50)))
        reservation = backend.reserve(check=check(per_minute, tokens))
        assert backend.release(windows=reservation.windows) is None
        assert used(backend, per_minute, tokens) == [0, 50]
        assert kept.allowed
        assert backend.reserve(check=check(per_minute, tokens)).allowed

    def test_release_never_goes_below_zero_and_ignores_refusals(self, backend):
        per_minute = requests_per(Window.MINUTE, 1)
        reservation = backend.reserve(check=check(per_minute))
        refused = backend.reserve(check=check(per_minute))
        backend.release(windows=refused.windows)
        assert used(backend, per_minute) == [1]
        backend.release(windows=reservation.windows)
        backend.release(windows=reservation.windows)
        assert used(backend, per_minute) == [0]

    def test_current_reads_without_counting(self, backend):
        per_minute = requests_per(Window.MINUTE, 2)
        unseen = requests_per(Window.HOUR, 2, key="u:9:requests")
        backend.reserve(check=check(per_minute))
        backend.reserve(check=check(per_minute))
        now_minute, now_unseen = backend.current(windows=[per_minute, unseen])
        assert (now_minute.used_after, now_minute.limit, now_minute.exceeded) == (2, 2, True)
        assert now_minute.percent_used() == 100.0
        assert (now_unseen.used_after, now_unseen.exceeded) == (0, False)
        assert used(backend, per_minute) == [2]
        assert backend.current(windows=[]) == ()

    def test_a_warning_threshold_is_crossed_exactly_once(self, backend):
        per_day = requests_per(Window.DAY, 10)
        results = [backend.reserve(check=check(per_day)) for _ in range(12)]
        crossings = [i for i, result in enumerate(results) if result.windows[0].crossed(percent=80)]
        assert crossings == [7]


class TestConcurrency:
    THREADS = 60
    LIMIT = 17

    @pytest.mark.django_db(transaction=True, serialized_rollback=True)
    def test_parallel_reservations_admit_exactly_the_limit(self, backend):
        limit = requests_per(Window.MINUTE, self.LIMIT)
        results: list[ReserveResult] = run_concurrently(self.THREADS, lambda _: backend.reserve(check=check(limit)))
        admitted = [result for result in results if result.allowed]
        assert len(admitted) == self.LIMIT
        # Each admitted call saw a distinct count: the reservations were serialized.
        assert sorted(result.windows[0].used_before for result in admitted) == list(range(self.LIMIT))
        assert sum(result.windows[0].crossed(percent=50) for result in admitted) == 1
        assert all(result.retry_after >= 1 for result in results if not result.allowed)
        assert used(backend, limit) == [self.LIMIT]

    @pytest.mark.django_db(transaction=True, serialized_rollback=True)
    def test_parallel_multi_window_checks_are_all_or_nothing(self, backend):
        requests = requests_per(Window.MINUTE, self.LIMIT)
        tokens = tokens_per_day(70, 7)  # room for 10 calls: the binding limit
        results = run_concurrently(self.THREADS, lambda _: backend.reserve(check=check(requests, tokens)))
        assert sum(result.allowed for result in results) == 10
        assert used(backend, requests, tokens) == [10, 70]

    @pytest.mark.django_db(transaction=True, serialized_rollback=True)
    def test_parallel_release_and_reserve_stay_exact(self, backend):
        limit = requests_per(Window.MINUTE, self.LIMIT)

        def reserve_then_release_odd(index: int) -> bool:
            result = backend.reserve(check=check(limit))
            if result.allowed and index % 2:
                backend.release(windows=result.windows)
                return False
            return result.allowed

        kept = sum(run_concurrently(self.THREADS, reserve_then_release_odd))
        assert used(backend, limit) == [kept]
        assert kept <= self.LIMIT


class TestRedisBackend:
    def test_keys_expire_one_window_plus_margin_after_the_write(self, redis_backend, clock):
        clock.set(datetime(2026, 11, 20, 10, 17, 42, tzinfo=UTC))
        redis_backend.reserve(check=check(requests_per(Window.MINUTE, 5), tokens_per_day(100, 10)))
        minute_start = int(datetime(2026, 11, 20, 10, 17, tzinfo=UTC).timestamp())
        minute_key = redis_backend.storage_key(key="u:1:requests", window=Window.MINUTE, window_start=minute_start)
        day_key = redis_backend.storage_key(
            key="t:1:tokens", window=Window.DAY, window_start=int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())
        )
        assert redis_backend.client.get(minute_key) == b"1"
        assert 60 < redis_backend.client.ttl(minute_key) <= 60 + TTL_MARGIN_SECONDS
        assert 86400 < redis_backend.client.ttl(day_key) <= 86400 + TTL_MARGIN_SECONDS

    def test_a_reservation_is_one_round_trip(self, redis_backend, monkeypatch):
        limits = check(requests_per(Window.MINUTE, 5), requests_per(Window.HOUR, 5), tokens_per_day(100, 10))
        redis_backend.reserve(check=limits)  # loads the script on first use
        commands = []
        original = redis_backend.client.execute_command

        def counting(*args, **kwargs):
            commands.append(args[0])
            return original(*args, **kwargs)

        monkeypatch.setattr(redis_backend.client, "execute_command", counting)
        redis_backend.reserve(check=limits)
        redis_backend.current(windows=limits.windows)
        assert commands == ["EVALSHA", "MGET"]

    @pytest.mark.services
    def test_a_call_s_keys_share_its_tenant_s_cluster_slot_with_one_round_trip_each(
        self, redis_backend, monkeypatch
    ):
        monkeypatch.setattr(admission, "get_counter_backend", lambda: redis_backend)
        membership, limits = a_call(tenant_id=3, membership_id=7)
        admission.reserve(membership=membership, limits=limits, estimated_tokens=5, feature="f")  # loads the script
        recorder = RecordingClient(redis_backend.client, monkeypatch)

        reservation = admission.reserve(membership=membership, limits=limits, estimated_tokens=5, feature="f")
        admitted = recorder.take()
        admission.settle(reservation=reservation, sent=True, prompt_tokens=4, completion_tokens=9)
        settled = recorder.take()
        refunded = admission.reserve(membership=membership, limits=limits, estimated_tokens=5, feature="f")
        recorder.take()
        admission.settle(reservation=refunded, sent=False)
        released = recorder.take()

        assert [c[0] for c in admitted] == [c[0] for c in settled] == [c[0] for c in released] == ["EVALSHA"]
        keys = script_keys(admitted[0])
        assert len(keys) == 5  # the user's minute/hour/day/tokens windows and the tenant's tokens window
        assert {key_slot(k.encode()) for k in keys} == {key_slot(b"t:3")}
        assert {hash_tag(k) for k in keys} == {"t:3"}
        assert {key_slot(k.encode()) for k in script_keys(settled[0]) + script_keys(released[0])} == {key_slot(b"t:3")}

    @pytest.mark.services
    def test_tenants_keys_are_tagged_by_their_own_tenant(self, redis_backend, monkeypatch):
        recorder = RecordingClient(redis_backend.client, monkeypatch)
        slots = {}
        for tenant_id in (3, 4):
            membership, limits = a_call(tenant_id=tenant_id, membership_id=tenant_id * 10)
            redis_backend.reserve(check=admission.call_check(membership=membership, limits=limits, estimated_tokens=1))
            keys = script_keys(recorder.take()[-1])
            assert {hash_tag(k) for k in keys} == {f"t:{tenant_id}"}
            slots[tenant_id] = {key_slot(k.encode()) for k in keys}
            assert slots[tenant_id] == {key_slot(f"t:{tenant_id}".encode())}
        assert slots[3] != slots[4]
        # Many tenants spread over the slots rather than sharing one.
        assert len({key_slot(f"t:{n}".encode()) for n in range(50)}) > 40

    @pytest.mark.services
    @pytest.mark.parametrize("key", ["u:{1}:requests", "u:}{x}:requests", "{t:9}", "}"])
    def test_a_brace_in_the_key_cannot_move_the_hash_tag(self, redis_backend, key):
        stored = redis_backend.storage_key(key=key, window=Window.MINUTE, window_start=60, subject="t:3")
        before_tag = stored[: stored.index("{")]
        assert "}" not in before_tag
        assert stored[stored.index("{") : stored.index("}") + 1] == "{t:3}"
        assert key_slot(stored.encode()) == key_slot(b"t:3")
        result = redis_backend.reserve(
            check=LimitCheck(windows=(LimitWindow(key=key, window=Window.MINUTE, limit=1, subject="t:3"),))
        )
        assert result.allowed

    @pytest.mark.services
    def test_a_prefix_with_a_brace_is_refused(self, redis_url):
        with pytest.raises(ValueError):
            RedisCounterBackend(url=redis_url, key_prefix="limits:{x}:")

    def test_redis_down_raises_limits_unavailable_and_logs_without_secrets(self, clock, caplog, monkeypatch):
        backend = RedisCounterBackend(
            url=f"redis://:s3cret-pass@127.0.0.1:{closed_port()}/0", key_prefix="test-limits:down:", clock=clock
        )
        # Failing fast is configured, not timed: each attempt waits at most the socket timeouts,
        # and a refused connection is retried once.
        connection = backend.client.connection_pool.connection_kwargs
        assert connection["socket_connect_timeout"] == connection["socket_timeout"] == 1.0
        attempts = []
        original_connect = redis.connection.AbstractConnection.connect

        def counting_connect(self, *args, **kwargs):
            attempts.append(1)
            return original_connect(self, *args, **kwargs)

        monkeypatch.setattr(redis.connection.AbstractConnection, "connect", counting_connect)
        with caplog.at_level(logging.ERROR, logger="copilot_admin.usage.counters"):
            with pytest.raises(LimitsUnavailable) as raised:
                backend.reserve(check=check(requests_per(Window.MINUTE, 5)))
            with pytest.raises(LimitsUnavailable):
                backend.current(windows=[requests_per(Window.MINUTE, 5)])
        assert 2 <= len(attempts) <= 4  # one attempt and one retry per operation, no more
        assert raised.value.code == "limits_unavailable" and raised.value.status_code == 503
        assert "Redis at 127.0.0.1:" in caplog.text
        assert "s3cret-pass" not in caplog.text

    def test_redis_down_never_fails_reconcile_or_release(self, clock, caplog):
        backend = RedisCounterBackend(url=f"redis://127.0.0.1:{closed_port()}/0", clock=clock)
        bucket = datetime(2026, 11, 20, tzinfo=UTC)
        reservation = ReserveResult(
            allowed=True,
            windows=(
                WindowUsage(
                    key="t:1:tokens",
                    window=Window.DAY,
                    limit=100,
                    amount=10,
                    window_start=bucket,
                    resets_at=bucket + timedelta(days=1),
                    used_before=0,
                    used_after=10,
                    exceeded=False,
                    retry_after=1,
                ),
            ),
        )
        with caplog.at_level(logging.ERROR, logger="copilot_admin.usage.counters"):
            assert backend.reconcile(windows=reservation.windows, actual={"t:1:tokens": 25}) == ()
            assert backend.release(windows=reservation.windows) is None
        assert "reconcile not applied to t:1:tokens/day" in caplog.text
        assert "release not applied to t:1:tokens/day" in caplog.text


class TestDatabaseBackend:
    def test_a_bucket_is_one_row(self, database_backend, clock):
        clock.set(datetime(2026, 11, 20, 10, 17, 42, tzinfo=UTC))
        for _ in range(3):
            database_backend.reserve(check=check(requests_per(Window.MINUTE, 5)))
        row = LimitCounter.objects.get()
        assert (row.key, row.window_start, row.used) == (
            "minute:u:1:requests",
            datetime(2026, 11, 20, 10, 17, tzinfo=UTC),
            3,
        )
        assert row.expires_at == datetime(2026, 11, 20, 10, 18, tzinfo=UTC) + timedelta(seconds=TTL_MARGIN_SECONDS)

    def test_purge_expired_deletes_only_finished_windows(self, database_backend, clock):
        database_backend.reserve(check=check(requests_per(Window.MINUTE, 5), requests_per(Window.DAY, 5)))
        clock.advance(60 + TTL_MARGIN_SECONDS + 1)
        assert database_backend.purge_expired() == 1
        assert list(LimitCounter.objects.values_list("key", flat=True)) == ["day:u:1:requests"]

    def test_lock_contention_is_retried(self, database_backend, monkeypatch):
        original = DatabaseCounterBackend._locked_rows
        failures = iter([OperationalError("database is locked"), OperationalError("deadlock detected")])

        def flaky(self, buckets):
            error = next(failures, None)
            if error:
                raise error
            return original(self, buckets)

        monkeypatch.setattr(DatabaseCounterBackend, "_locked_rows", flaky)
        assert database_backend.reserve(check=check(requests_per(Window.MINUTE, 5))).allowed
        assert used(database_backend, requests_per(Window.MINUTE, 5)) == [1]

    def test_lasting_contention_raises_limits_unavailable(self, clock, monkeypatch, caplog, db):
        backend = DatabaseCounterBackend(lock_timeout=0.05, clock=clock)

        def locked(self, buckets):
            raise OperationalError("database is locked")

        monkeypatch.setattr(DatabaseCounterBackend, "_locked_rows", locked)
        with caplog.at_level(logging.ERROR, logger="copilot_admin.usage.counters"), pytest.raises(LimitsUnavailable):
            backend.reserve(check=check(requests_per(Window.MINUTE, 5)))
        assert "reserve on the database gave up" in caplog.text


class TestConfiguration:
    def test_redis_url_selects_redis(self, settings):
        settings.REDIS_URL = "redis://127.0.0.1:6379/15"
        assert isinstance(get_counter_backend(), RedisCounterBackend)
        assert get_counter_backend() is get_counter_backend()

    def test_no_redis_url_selects_the_database(self, settings):
        settings.REDIS_URL = ""
        assert isinstance(get_counter_backend(), DatabaseCounterBackend)

    def test_fail_open_is_off_unless_configured(self, settings):
        if hasattr(settings, "USAGE_LIMITS_FAIL_OPEN"):
            del settings.USAGE_LIMITS_FAIL_OPEN
        assert limits_fail_open() is False
        settings.USAGE_LIMITS_FAIL_OPEN = True
        assert limits_fail_open() is True

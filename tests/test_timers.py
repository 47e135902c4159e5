"""TimerWheel: a property test against a sorted-list model, then trio MockClock tests of run()."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Hashable

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tarry.timers import TimerWheel

YEAR = 365.25 * 24 * 3600

# (resolution, bits, levels): the default wheel (1 ms over 2.2 years), and small ones spanning
# 64 ms, 16 s and 10 s, so cascades from every level and the overflow happen on most examples.
CONFIGS = [
    (0.001, 6, 6),
    (0.001, 2, 3),
    (0.25, 3, 2),
    (1e-5, 5, 4),
]
KEYS = range(8)  # few keys, so schedules often replace (reschedule) a live entry


class ReferenceModel:
    """What the wheel must do, the slow obvious way: a list kept sorted by deadline."""

    def __init__(self, resolution: float) -> None:
        self.resolution = resolution
        self.pending: list[tuple[float, Hashable]] = []

    def schedule(self, key: Hashable, deadline: float) -> None:
        self.cancel(key)
        self.pending.append((deadline, key))
        self.pending.sort(key=lambda item: item[0])

    def cancel(self, key: Hashable) -> bool:
        before = len(self.pending)
        self.pending = [item for item in self.pending if item[1] != key]
        return len(self.pending) != before

    def deadline(self, key: Hashable) -> float | None:
        return next((deadline for deadline, k in self.pending if k == key), None)

    def tick(self, deadline: float) -> int:
        return math.ceil(deadline / self.resolution)

    def advance(self, now: float) -> set[Hashable]:
        # Due: the tick containing now has reached the deadline's (rounded up) tick, and now
        # itself is past the deadline (float rounding can make the first true without the second).
        target = math.floor(now / self.resolution)
        due = [(d, k) for d, k in self.pending if self.tick(d) <= target and d <= now]
        self.pending = [item for item in self.pending if item not in due]
        return {k for _, k in due}

    def earliest_fire(self) -> float | None:
        """The earliest time at which advance() would fire anything."""
        if not self.pending:
            return None
        return min(max(d, self.tick(d) * self.resolution) for d, _ in self.pending)


magnitudes = st.builds(lambda mantissa, exponent: mantissa * 10.0**exponent, st.floats(1.0, 10.0), st.integers(-6, 9))
deadline_specs = st.one_of(
    st.tuples(st.just("ahead"), magnitudes),  # 1 us .. 300 years ahead: every level and the overflow
    st.tuples(st.just("overdue"), st.floats(0.0, 5.0)),
    # On a tick boundary, or an ulp or two off it: where ceil(deadline / resolution) rounds badly.
    st.tuples(st.just("on_tick"), st.tuples(st.integers(-3, 40), st.integers(-2, 2))),
)
jumps = st.one_of(st.just(0.0), st.floats(0.0, 0.01), magnitudes)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.sampled_from(KEYS), deadline_specs),
        st.tuples(st.just("cancel"), st.sampled_from(KEYS)),
        st.tuples(st.just("advance"), jumps),
        st.tuples(st.just("advance_to_tick"), st.tuples(st.integers(0, 40), st.integers(-2, 2))),
        st.tuples(st.just("advance_to_next")),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.sampled_from(CONFIGS), ops=operations)
# 0.011000000000000001 rounds to tick 11, which floor(0.011 / 0.001) reaches while now < deadline.
@example(config=CONFIGS[0], ops=[("schedule", 1, ("on_tick", (11, 1))), ("advance_to_tick", (11, 0))])
# Overdue entries scheduled latest-first must still fire earliest-first.
@example(
    config=CONFIGS[0], ops=[("advance", 10.0), ("schedule", 0, ("overdue", 1.0)), ("schedule", 1, ("overdue", 2.0))]
)
def test_wheel_matches_reference_model(config: tuple[float, int, int], ops: list[tuple]) -> None:
    resolution, bits, levels = config
    wheel = TimerWheel(resolution=resolution, bits=bits, levels=levels)
    model = ReferenceModel(resolution)
    now = 0.0
    fired: list[Hashable] = []

    def record(key: Hashable) -> None:
        fired.append(key)

    def on_tick(base: float, ticks: int, ulps: int) -> float:
        time = (math.floor(base / resolution) + ticks) * resolution
        for _ in range(abs(ulps)):
            time = math.nextafter(time, math.copysign(math.inf, ulps))
        return time

    def advance_both(to: float) -> None:
        fired.clear()
        deadlines = {key: deadline for deadline, key in model.pending}
        expected = model.advance(to)
        count = wheel.advance(to)
        assert set(fired) == expected, f"advance({to!r}) fired {fired}, model says {expected}"
        assert len(fired) == len(expected) == count, "an entry fired twice, or the count is wrong"
        order = [deadlines[key] for key in fired]
        assert order == sorted(order), f"fired out of deadline order: {list(zip(fired, order, strict=True))}"
        for key in fired:
            assert deadlines[key] <= to, f"{key} fired early: deadline {deadlines[key]!r} > now {to!r}"

    def check_state() -> None:
        assert len(wheel) == len(model.pending)
        for key in KEYS:
            assert wheel.deadline(key) == model.deadline(key)
            assert (key in wheel) == (model.deadline(key) is not None)
        earliest = model.earliest_fire()
        next_time = wheel.next_deadline()
        if earliest is None:
            assert next_time is None
        else:
            # The run loop sleeps until next_deadline(): it must not oversleep any entry.
            assert next_time is not None
            assert next_time <= earliest + 4 * math.ulp(earliest), (next_time, earliest)

    for op in ops:
        if op[0] == "schedule":
            _, key, (kind, value) = op
            if kind == "ahead":
                deadline = now + value
            elif kind == "overdue":
                deadline = now - value
            else:
                deadline = on_tick(now, *value)
            wheel.schedule(key, deadline, record)
            model.schedule(key, deadline)
        elif op[0] == "cancel":
            assert wheel.cancel(op[1]) == model.cancel(op[1])
        elif op[0] == "advance":
            now += op[1]
            advance_both(now)
        elif op[0] == "advance_to_tick":
            now = max(now, on_tick(now, *op[1]))
            advance_both(now)
        else:
            next_time = wheel.next_deadline()
            if next_time is not None:
                now = max(now, next_time)
                advance_both(now)
        check_state()

    # Drain the way run() does, advance(next_deadline()) in a loop: it must reach empty in a
    # number of steps bounded by the entries' cascades, never tick by tick, never spinning.
    steps, bound = 0, (levels + 2) * len(model.pending) + 2
    while (next_time := wheel.next_deadline()) is not None:
        steps += 1
        assert steps <= bound, f"drain took over {bound} steps"
        now = max(now, next_time)
        advance_both(now)
        check_state()
    assert len(wheel) == 0


# -- direct (sync) behaviour ----------------------------------------------------------------------


def test_schedule_existing_key_moves_it() -> None:
    wheel = TimerWheel()
    fired: list[Hashable] = []
    wheel.schedule("k", 5.0, fired.append)
    wheel.schedule("k", 1.0, fired.append)
    assert len(wheel) == 1
    assert wheel.deadline("k") == 1.0
    assert wheel.advance(0.999) == 0
    assert wheel.advance(1.0) == 1
    assert fired == ["k"]
    assert wheel.advance(10.0) == 0
    assert fired == ["k"]
    assert wheel.next_deadline() is None


def test_cancel_reports_whether_scheduled() -> None:
    wheel = TimerWheel()
    assert wheel.cancel("nope") is False
    wheel.schedule("k", 3.0, lambda key: None)
    assert "k" in wheel
    assert wheel.cancel("k") is True
    assert wheel.cancel("k") is False
    assert "k" not in wheel
    assert wheel.deadline("k") is None
    assert wheel.advance(100.0) == 0


def test_deadline_in_the_past_fires_on_next_advance() -> None:
    wheel = TimerWheel()
    wheel.advance(10.0)
    fired: list[Hashable] = []
    wheel.schedule("late", 3.0, fired.append)
    next_time = wheel.next_deadline()
    assert next_time is not None
    assert next_time <= 10.0
    assert wheel.advance(10.0) == 1
    assert fired == ["late"]


def test_fire_order_and_never_early_with_ceil_rounding() -> None:
    wheel = TimerWheel(resolution=0.001)
    order: list[Hashable] = []
    for key, deadline in [("c", 0.0035), ("a", 0.0011), ("b", 0.002), ("d", 7200.0)]:
        wheel.schedule(key, deadline, order.append)
    # 0.0011 rounds up to tick 2: not at 0.0019, at 0.002 (with "b").
    assert wheel.advance(0.0019) == 0
    assert wheel.advance(0.002) == 2
    assert order == ["a", "b"]  # one tick, still in deadline order
    assert wheel.advance(0.0039) == 0  # 0.0035 is tick 4
    assert wheel.advance(0.004) == 1
    assert order[-1] == "c"
    assert wheel.advance(7199.9999) == 0
    assert wheel.advance(7200.0) == 1
    assert order[-1] == "d"


def test_float_rounding_never_fires_before_the_deadline() -> None:
    # 0.009000000000000001 / 0.001 rounds up to tick 9, and floor(0.009 / 0.001) is 9 too:
    # the tick is reached at now=0.009 while the deadline is not.
    wheel = TimerWheel(resolution=0.001)
    deadline = math.nextafter(0.009, math.inf)
    assert math.ceil(deadline / 0.001) == math.floor(0.009 / 0.001)
    fired: list[Hashable] = []
    wheel.schedule("k", deadline, fired.append)
    assert wheel.advance(0.009) == 0
    next_time = wheel.next_deadline()
    assert next_time is not None
    assert next_time >= deadline
    assert wheel.advance(next_time) == 1
    assert fired == ["k"]


def test_many_cancelled_far_timers_leave_the_rest_working() -> None:
    # A 16-tick wheel: everything here is in the overflow, each entry in a block of its own.
    wheel = TimerWheel(resolution=1.0, bits=2, levels=2)
    fired: list[Hashable] = []
    for key in range(500):
        wheel.schedule(key, 100.0 + 37.0 * key, fired.append)
    keep = list(range(0, 500, 50))
    for key in range(500):
        if key not in keep:
            assert wheel.cancel(key) is True
    assert len(wheel) == len(keep)
    for key in keep:
        deadline = 100.0 + 37.0 * key
        assert wheel.advance(deadline - 1.0) == 0
        assert wheel.advance(deadline) == 1
        assert fired[-1] == key
    assert fired == keep
    assert wheel.next_deadline() is None


class _Stop(BaseException):
    pass


def test_base_exception_in_callback_keeps_the_rest_of_the_tick() -> None:
    wheel = TimerWheel()
    fired: list[Hashable] = []

    def callback(key: Hashable) -> None:
        if not fired:
            fired.append("raised")
            raise _Stop
        fired.append(key)

    for key in ("a", "b", "c"):
        wheel.schedule(key, 1.0, callback)
    with pytest.raises(_Stop):
        wheel.advance(1.0)
    assert len(wheel) == 2
    assert wheel.advance(1.0) == 2
    assert len(fired) == 3
    assert len(wheel) == 0


def test_callback_cancelling_a_sibling_of_the_same_tick() -> None:
    wheel = TimerWheel()
    fired: list[Hashable] = []
    cancelled: list[bool] = []

    def first(key: Hashable) -> None:
        fired.append(key)
        cancelled.append(wheel.cancel("b" if key == "a" else "a"))

    wheel.schedule("a", 1.0, first)
    wheel.schedule("b", 1.0, first)
    assert wheel.advance(1.0) == 1
    assert len(fired) == 1
    assert cancelled == [True]
    assert len(wheel) == 0


def test_callback_moving_a_sibling_of_the_same_tick_to_later() -> None:
    wheel = TimerWheel()
    fired: list[tuple[Hashable, float]] = []
    now = 1.0

    def callback(key: Hashable) -> None:
        fired.append((key, now))
        if len(fired) == 1:
            wheel.schedule("b" if key == "a" else "a", 5.0, callback)

    wheel.schedule("a", 1.0, callback)
    wheel.schedule("b", 1.0, callback)
    assert wheel.advance(now) == 1
    assert len(wheel) == 1
    now = 5.0
    assert wheel.advance(now) == 1
    assert [at for _, at in fired] == [1.0, 5.0]
    assert {key for key, _ in fired} == {"a", "b"}


def test_overdue_entries_fire_in_deadline_order() -> None:
    wheel = TimerWheel()
    wheel.advance(100.0)
    fired: list[Hashable] = []
    for key, deadline in [("third", 99.0), ("first", 10.0), ("second", 50.0)]:
        wheel.schedule(key, deadline, fired.append)
    assert wheel.advance(100.0) == 3
    assert fired == ["first", "second", "third"]


def test_callback_rescheduling_itself_now_waits_for_next_advance() -> None:
    wheel = TimerWheel()
    calls: list[float] = []

    def again(key: Hashable) -> None:
        calls.append(1.0)
        wheel.schedule(key, 1.0, again)  # at the tick being fired: must not loop within one advance

    wheel.schedule("k", 1.0, again)
    assert wheel.advance(1.0) == 1
    assert wheel.advance(1.0) == 1
    assert len(calls) == 2
    assert "k" in wheel


def test_raising_callback_is_logged_and_the_rest_still_fire(caplog) -> None:
    wheel = TimerWheel()
    fired: list[Hashable] = []

    def boom(key: Hashable) -> None:
        raise ValueError("boom")

    wheel.schedule("bad", 1.0, boom)
    wheel.schedule("same-tick", 1.0, fired.append)
    wheel.schedule("later", 2.0, fired.append)
    with caplog.at_level(logging.ERROR, logger="tarry.timers"):
        assert wheel.advance(5.0) == 3
    assert fired == ["same-tick", "later"]
    records = [r for r in caplog.records if r.name == "tarry.timers"]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], ValueError)


def test_advance_from_a_callback_is_refused(caplog) -> None:
    wheel = TimerWheel()
    errors: list[BaseException] = []

    def nested(key: Hashable) -> None:
        try:
            wheel.advance(2.0)
        except RuntimeError as exc:
            errors.append(exc)

    wheel.schedule("k", 1.0, nested)
    assert wheel.advance(1.0) == 1
    assert len(errors) == 1


def test_invalid_arguments() -> None:
    for bad in ({"resolution": 0.0}, {"resolution": -1.0}, {"resolution": math.nan}, {"bits": 0}, {"levels": 0}):
        with pytest.raises(ValueError, match="must be"):
            TimerWheel(**bad)
    wheel = TimerWheel()
    for deadline in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite"):
            wheel.schedule("k", deadline, lambda key: None)
    assert len(wheel) == 0
    with pytest.raises(ValueError, match="finite"):
        wheel.advance(math.inf)


def test_long_jumps_do_not_step_tick_by_tick() -> None:
    # 20 years at 1 us resolution is 6e14 ticks: stepping them one by one would never finish.
    wheel = TimerWheel(resolution=1e-6)
    rng = random.Random(7)
    deadlines = {key: rng.uniform(0.0, 20 * YEAR) for key in range(2000)}
    fired: list[Hashable] = []
    for key, deadline in deadlines.items():
        wheel.schedule(key, deadline, fired.append)
    first_decade = sum(1 for deadline in deadlines.values() if deadline <= 10 * YEAR)
    started = time.perf_counter()
    assert wheel.advance(10 * YEAR) == first_decade
    assert wheel.advance(21 * YEAR) == len(deadlines) - first_decade
    elapsed = time.perf_counter() - started
    assert fired == sorted(deadlines, key=deadlines.__getitem__)
    assert elapsed < 2.0, f"advancing 21 years took {elapsed:.2f}s"


# -- run() under trio's MockClock ------------------------------------------------------------------

# Mock seconds (autojump makes them instant): a wheel that never wakes up fails with TooSlowError
# instead of leaving the test blocked forever.
HANG_GUARD = 7 * 24 * 3600.0


async def test_run_fires_a_three_hour_timer_on_time(autojump_clock: trio.testing.MockClock) -> None:
    wheel = TimerWheel()
    fired_at: list[float] = []
    done = trio.Event()

    def on_fire(key: Hashable) -> None:
        fired_at.append(trio.current_time())
        done.set()

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(wheel.run)
            deadline = trio.current_time() + 3 * 3600
            wheel.schedule("nap", deadline, on_fire)
            await trio.sleep_until(deadline - 1.0)
            assert fired_at == []
            await done.wait()
            nursery.cancel_scope.cancel()
    assert len(fired_at) == 1
    assert deadline <= fired_at[0] < deadline + 2 * wheel.resolution
    assert len(wheel) == 0


async def test_earlier_timer_wakes_a_sleeping_run(autojump_clock: trio.testing.MockClock) -> None:
    wheel = TimerWheel()
    fired_at: dict[Hashable, float] = {}
    early_done = trio.Event()

    def on_fire(key: Hashable) -> None:
        fired_at[key] = trio.current_time()
        if key == "early":
            early_done.set()

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(wheel.run)
            wheel.schedule("late", trio.current_time() + 3600.0, on_fire)
            await trio.sleep(1.0)  # run() is now asleep until the late entry's first cascade (~57 min)
            early = trio.current_time() + 10.0
            wheel.schedule("early", early, on_fire)
            await early_done.wait()
            nursery.cancel_scope.cancel()
    assert early <= fired_at["early"] < early + 2 * wheel.resolution
    assert "late" not in fired_at
    assert "late" in wheel


async def test_empty_wheel_sleeps_without_polling(autojump_clock: trio.testing.MockClock) -> None:
    class CountingWheel(TimerWheel):
        advances = 0

        def advance(self, now: float) -> int:
            self.advances += 1
            return super().advance(now)

    wheel = CountingWheel()
    fired_at: list[float] = []
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(wheel.run)
            await trio.sleep(24 * 3600.0)
            assert wheel.advances == 1  # the one at start, then asleep for a whole day
            deadline = trio.current_time() + 0.5
            wheel.schedule("k", deadline, lambda key: fired_at.append(trio.current_time()))
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
    assert len(fired_at) == 1
    assert deadline <= fired_at[0] < deadline + 2 * wheel.resolution


async def test_cancel_prevents_firing(autojump_clock: trio.testing.MockClock) -> None:
    wheel = TimerWheel()
    fired: list[Hashable] = []
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(wheel.run)
            wheel.schedule("k", trio.current_time() + 60.0, fired.append)
            await trio.sleep(10.0)
            assert wheel.cancel("k") is True
            await trio.sleep(120.0)
            nursery.cancel_scope.cancel()
    assert fired == []
    assert len(wheel) == 0


async def test_raising_callback_does_not_stop_run(autojump_clock: trio.testing.MockClock, caplog) -> None:
    wheel = TimerWheel()
    fired_at: list[float] = []
    done = trio.Event()

    def boom(key: Hashable) -> None:
        raise RuntimeError("callback failure")

    def good(key: Hashable) -> None:
        fired_at.append(trio.current_time())
        done.set()

    with caplog.at_level(logging.ERROR, logger="tarry.timers"), trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(wheel.run)
            start = trio.current_time()
            wheel.schedule("bad", start + 1.0, boom)
            wheel.schedule("good", start + 2.0, good)
            await done.wait()
            nursery.cancel_scope.cancel()
    assert start + 2.0 <= fired_at[0] < start + 2.0 + 2 * wheel.resolution
    assert any(r.name == "tarry.timers" and r.exc_info for r in caplog.records)


async def test_rescheduling_from_inside_callback(autojump_clock: trio.testing.MockClock) -> None:
    wheel = TimerWheel()
    fired_at: list[float] = []
    done = trio.Event()
    start = trio.current_time()

    def tick(key: Hashable) -> None:
        fired_at.append(trio.current_time())
        if len(fired_at) < 3:
            wheel.schedule(key, start + 5.0 * (len(fired_at) + 1), tick)
        else:
            done.set()

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(wheel.run)
            wheel.schedule("periodic", start + 5.0, tick)
            await done.wait()
            nursery.cancel_scope.cancel()
    assert len(fired_at) == 3
    for n, at in enumerate(fired_at, start=1):
        assert start + 5.0 * n <= at < start + 5.0 * n + 2 * wheel.resolution
    assert len(wheel) == 0

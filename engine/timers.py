"""The timer wheel behind durable sleeps and timeouts.

:class:`TimerWheel` is a hierarchical hashed timing wheel (Varghese & Lauck, as in the classic
Linux kernel timer code) driven by trio's clock. Time is cut into ticks of ``resolution``
seconds; level ``L`` has ``2**bits`` slots of ``2**(L*bits)`` ticks each, so ``levels`` levels
cover ``2**(bits*levels)`` ticks (with the defaults, 1 ms ticks over about 2.2 years). Later
entries wait in an overflow keyed by their top bits and are moved into the wheel when it gets
there.

Guarantees:

* Never early. An entry fires in the first :meth:`TimerWheel.advance` whose ``now`` is at or
  past its deadline and whose tick (``floor(now / resolution)``) is at or past the entry's tick
  (``ceil(deadline / resolution)``). Both are checked, so float rounding cannot make it fire
  before its deadline either.
* Never skipped. Every entry whose time has come fires in that one advance, however far
  ``now`` jumps; the wheel jumps from event to event (a slot to fire, a slot to cascade) and
  never steps over empty ticks one by one, so an advance over days costs what its entries cost.
* Ordered. Within one advance entries fire in deadline order (equal deadlines in any order).
* O(1) :meth:`~TimerWheel.schedule` and :meth:`~TimerWheel.cancel` (a dict operation and a bit
  flip; entries beyond the top level cost one heap push per distinct overflow block, not per
  entry). An entry is cascaded at most once per level on its way down.
* Lateness. Under :meth:`TimerWheel.run` an entry fires at most one tick after its deadline
  plus trio's scheduling latency, as long as the event loop is not starved (a task that does
  not checkpoint delays every timer in the process).

Failure modes:

* A callback that raises :class:`Exception` is logged on the ``tarry.timers`` logger and the
  wheel goes on with the next entry. A :class:`BaseException` (``KeyboardInterrupt``...)
  propagates out of :meth:`~TimerWheel.advance`; the entries of that tick that had not fired
  yet stay scheduled and fire on the next advance.
* Callbacks run synchronously inside :meth:`~TimerWheel.advance` (so inside :meth:`run`'s
  task): a slow callback delays all later timers. They should hand work off (set an event,
  ``send_nowait`` on a channel), not do it.
* Callbacks may call :meth:`~TimerWheel.schedule` and :meth:`~TimerWheel.cancel`, including on
  their own key. An entry they schedule at or before the tick being fired waits for the next
  advance, so a callback that reschedules itself "now" cannot loop forever. Calling
  :meth:`~TimerWheel.advance` from a callback raises :class:`RuntimeError`.
* An internal inconsistency (a bug) raises :class:`RuntimeError` out of
  :meth:`~TimerWheel.advance` and :meth:`~TimerWheel.run` rather than spin with timers stuck.
* The wheel is plain trio-thread state, not thread-safe: call it from trio tasks (or from a
  thread through ``trio.from_thread.run_sync``).
* It is memory only: durability comes from the caller, which keeps the deadlines in the store
  and schedules them again after a restart (overdue ones fire on the first advance).
"""

from __future__ import annotations

import heapq
import logging
import math
import operator
from collections.abc import Callable, Hashable

import trio

__all__ = ["TimerWheel"]

log = logging.getLogger("tarry.timers")

_by_deadline = operator.attrgetter("deadline")

# Where an entry sits, kept in _Entry.level (0 .. levels-1 are the wheel's levels).
_OVERFLOW = -1  # beyond the top level; _Entry.slot holds its overflow block number
_DUE = -2  # tick already reached when scheduled: fires on the next advance
_FIRING = -3  # taken out of its slot into the batch being fired


class _Entry:
    # 100,000 of these may sit in the wheel: no per-instance __dict__.
    __slots__ = ("callback", "deadline", "key", "level", "slot", "tick")

    def __init__(self, key: Hashable, deadline: float, tick: int, callback: Callable[[Hashable], None]) -> None:
        self.key = key
        self.deadline = deadline
        self.tick = tick
        self.callback = callback
        self.level = _DUE
        self.slot = 0


class TimerWheel:
    """Hierarchical timing wheel firing callbacks at absolute deadlines on trio's clock.

    Args:
        resolution: seconds per tick; the precision of the wheel.
        bits: each level has ``2**bits`` slots.
        levels: number of levels; the wheel spans ``2**(bits*levels)`` ticks before overflow.
    """

    def __init__(self, *, resolution: float = 0.001, bits: int = 6, levels: int = 6) -> None:
        if not (math.isfinite(resolution) and resolution > 0):
            raise ValueError(f"resolution must be a positive number of seconds, got {resolution!r}")
        if bits < 1 or levels < 1:
            raise ValueError(f"bits and levels must be at least 1, got bits={bits!r} levels={levels!r}")
        self._resolution = resolution
        self._bits = bits
        self._levels = levels
        self._mask = (1 << bits) - 1
        self._top_shift = bits * levels
        self._slots: list[list[dict[Hashable, _Entry]]] = [[{} for _ in range(1 << bits)] for _ in range(levels)]
        # Bit i of _occupied[L] is set iff _slots[L][i] is not empty: finding the next event is
        # a lowest-set-bit on one int per level instead of a scan of slots.
        self._occupied: list[int] = [0] * levels
        # Overflow: block number (tick >> top_shift) -> entries, plus a min-heap of the block
        # numbers. Emptied blocks stay in the dict (and their number in the heap, once) until
        # the wheel reaches them or a compaction drops them, so the heap cannot grow by
        # schedule/cancel churn on one far block.
        self._overflow: dict[int, dict[Hashable, _Entry]] = {}
        self._overflow_heap: list[int] = []
        self._overflow_count = 0
        self._due: dict[Hashable, _Entry] = {}
        self._entries: dict[Hashable, _Entry] = {}
        try:
            now = trio.current_time()
        except RuntimeError:  # built outside trio.run (tests, set-up code): start the clock at 0
            now = 0.0
        # Every tick <= _current has been processed; everything in the wheel lies after it.
        # Never negative, so the XOR level arithmetic only ever sees non-negative ticks.
        self._current = max(0, math.floor(now / resolution))
        self._advancing = False
        self._running = False
        self._sleep_scope: trio.CancelScope | None = None

    # -- inspection --------------------------------------------------------------------------

    @property
    def resolution(self) -> float:
        return self._resolution

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def deadline(self, key: Hashable) -> float | None:
        """The deadline ``key`` is scheduled at, or None if it is not scheduled."""
        entry = self._entries.get(key)
        return None if entry is None else entry.deadline

    # -- schedule / cancel --------------------------------------------------------------------

    def schedule(self, key: Hashable, deadline: float, callback: Callable[[Hashable], None]) -> None:
        """Call ``callback(key)`` once trio's clock reaches ``deadline``.

        Replaces any entry already scheduled under ``key``. A deadline already past fires on
        the next :meth:`advance`.
        """
        if not math.isfinite(deadline):
            raise ValueError(f"timer deadline must be a finite time, got {deadline!r} (cancel() instead of never)")
        old = self._entries.get(key)
        if old is not None:
            self._unlink(old)
        entry = _Entry(key, deadline, self._tick_of(deadline), callback)
        self._entries[key] = entry
        self._place(entry)
        scope = self._sleep_scope
        if scope is not None:
            # run() is asleep until scope.deadline: pull it in if this entry is due earlier.
            wake = self._fire_time(entry)
            if wake < scope.deadline:
                scope.deadline = wake

    def cancel(self, key: Hashable) -> bool:
        """Unschedule ``key``. True if it was scheduled (and now will not fire)."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._unlink(entry)
        return True

    # -- advancing ----------------------------------------------------------------------------

    def advance(self, now: float) -> int:
        """Fire every entry whose time has come at ``now``, in deadline order; return how many fired."""
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite time, got {now!r}")
        if self._advancing:
            raise RuntimeError("TimerWheel.advance() called from inside a timer callback")
        self._advancing = True
        try:
            target = math.floor(now / self._resolution)
            fired = self._fire_due(now, target) if self._due else 0
            bits = self._bits
            occupied = self._occupied
            slots0 = self._slots[0]
            while True:
                occupied0 = occupied[0]
                if occupied0:
                    # The common case, kept tight: the next event is a level-0 slot. Its digit is
                    # above _current's, so it is >= 1 and no slot of a higher level starts there:
                    # nothing to cascade, only this slot to fire.
                    digit = (occupied0 & -occupied0).bit_length() - 1
                    current = self._current
                    tick = (current >> bits << bits) | digit
                    if tick > target:
                        break
                    if tick <= current:
                        self._corrupted(tick)
                    self._current = tick
                    occupied[0] = occupied0 & ~(1 << digit)
                    batch = list(slots0[digit].values())
                    slots0[digit] = {}
                    for entry in batch:
                        entry.level = _FIRING
                    fired += self._fire(batch, now)
                    continue
                # Level 0 is empty: the next event is a cascade from a higher level or the overflow.
                cascade_tick = self._next_event_tick()
                if cascade_tick is None or cascade_tick > target:
                    break
                if cascade_tick <= self._current:
                    self._corrupted(cascade_tick)
                self._current = cascade_tick
                batch = self._cascade(cascade_tick)
                if batch:
                    fired += self._fire(batch, now)
            # No event lies in (_current, target]: jumping straight there keeps every entry's
            # level right (see _place), which is what makes long jumps cost nothing.
            if target > self._current:
                self._current = target
        finally:
            self._advancing = False
        return fired

    def next_deadline(self) -> float | None:
        """When the next advance has something to do (fire or cascade), or None if empty.

        Advancing to the returned time always makes progress, so a loop of
        ``advance(next_deadline())`` never spins.
        """
        tick = self._next_event_tick()
        best = math.inf if tick is None else self._tick_start(tick)
        for entry in self._due.values():  # nearly always empty: overdue schedules, float edge cases
            best = min(best, self._fire_time(entry))
        return None if best == math.inf else best

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire timers on time, forever; run it in a nursery and cancel the nursery to stop."""
        if self._running:
            raise RuntimeError("TimerWheel.run() is already running")
        self._running = True
        try:
            task_status.started()
            stalled_at: float | None = None
            while True:
                now = trio.current_time()
                fired = self.advance(now)
                next_time = self.next_deadline()
                if next_time is not None and next_time <= now and fired == 0:
                    # After advance(now) only entries that callbacks scheduled in the past can be
                    # due at or before now, and then something fired. Twice in a row at the same
                    # time is a broken wheel: a loud error beats a task spinning at 100% CPU.
                    if next_time == stalled_at:
                        raise RuntimeError(f"timer wheel stalled: nothing happens at {next_time!r} (now {now!r})")
                    stalled_at = next_time
                # Sleep in a cancel scope whose deadline schedule() pulls in when an earlier
                # entry arrives; empty wheel: infinite deadline, no polling at all.
                with trio.CancelScope(deadline=math.inf if next_time is None else next_time) as scope:
                    self._sleep_scope = scope
                    try:
                        await trio.sleep_forever()
                    finally:
                        self._sleep_scope = None
        finally:
            self._running = False

    # -- internals ----------------------------------------------------------------------------

    def _corrupted(self, tick: int) -> None:
        # Cannot happen while the level invariant holds; if it ever breaks, fail loudly rather
        # than spin in advance() forever with the event loop blocked.
        raise RuntimeError(f"timer wheel corrupted: next event tick {tick} <= current tick {self._current}")

    def _tick_of(self, deadline: float) -> int:
        # Round up: an entry's tick never starts before its deadline.
        return math.ceil(deadline / self._resolution)

    def _tick_start(self, tick: int) -> float:
        """A time at which floor(time / resolution) >= tick (tick * resolution may round short)."""
        resolution = self._resolution
        time = tick * resolution
        while math.floor(time / resolution) < tick:
            time = math.nextafter(time, math.inf)
        return time

    def _fire_time(self, entry: _Entry) -> float:
        return max(entry.deadline, self._tick_start(entry.tick))

    def _place(self, entry: _Entry) -> None:
        """Put a live entry where it belongs relative to _current."""
        current = self._current
        tick = entry.tick
        if tick <= current:
            entry.level = _DUE
            self._due[entry.key] = entry
            return
        # The level is that of the highest bit in which the tick differs from _current: the
        # entry's slot digit at that level is then > _current's, all higher digits are equal,
        # and it stays so until _current reaches the slot's first tick, where it is cascaded.
        level = ((tick ^ current).bit_length() - 1) // self._bits
        if level >= self._levels:
            block = tick >> self._top_shift
            bucket = self._overflow.get(block)
            if bucket is None:
                bucket = self._overflow[block] = {}
                heapq.heappush(self._overflow_heap, block)
            bucket[entry.key] = entry
            entry.level = _OVERFLOW
            entry.slot = block
            self._overflow_count += 1
            return
        slot = (tick >> (level * self._bits)) & self._mask
        self._slots[level][slot][entry.key] = entry
        self._occupied[level] |= 1 << slot
        entry.level = level
        entry.slot = slot

    def _unlink(self, entry: _Entry) -> None:
        """Take an entry out of its container (the caller removes it from _entries)."""
        level = entry.level
        key = entry.key
        if level >= 0:
            bucket = self._slots[level][entry.slot]
            del bucket[key]
            if not bucket:
                self._occupied[level] &= ~(1 << entry.slot)
        elif level == _OVERFLOW:
            del self._overflow[entry.slot][key]
            self._overflow_count -= 1
            if len(self._overflow) > 4 * self._overflow_count + 64:
                self._compact_overflow()
        elif level == _DUE:
            del self._due[key]
        # _FIRING: the batch skips entries that are no longer in _entries.

    def _compact_overflow(self) -> None:
        # Many far blocks emptied by cancels: drop them so memory follows the live entries.
        self._overflow = {block: bucket for block, bucket in self._overflow.items() if bucket}
        self._overflow_heap = list(self._overflow)
        heapq.heapify(self._overflow_heap)

    def _next_event_tick(self) -> int | None:
        """The first tick after _current at which a slot fires or cascades, or None if empty.

        Occupied digits at each level are all above _current's digit (see _place), so the
        lowest set bit of the occupancy mask is the next slot; a lower level's next event
        always comes before a higher level's, and the overflow after the whole wheel.
        """
        current = self._current
        bits = self._bits
        for level, occupied in enumerate(self._occupied):
            if occupied:
                digit = (occupied & -occupied).bit_length() - 1
                shift = level * bits
                return (current >> (shift + bits) << (shift + bits)) | (digit << shift)
        heap = self._overflow_heap
        while heap:
            block = heap[0]
            if self._overflow[block]:
                return block << self._top_shift
            heapq.heappop(heap)  # emptied by cancels: forget it now
            del self._overflow[block]
        return None

    def _cascade(self, tick: int) -> list[_Entry]:
        """Redistribute every slot that starts at ``tick``, highest first; return those due at it."""
        batch: list[_Entry] = []
        # Slots of level L start on multiples of 2**(L*bits): the trailing zeros of tick say
        # which levels (and whether the overflow) have a slot starting here.
        trailing_zeros = (tick & -tick).bit_length() - 1
        if trailing_zeros >= self._top_shift:
            block = tick >> self._top_shift
            bucket = self._overflow.pop(block, None)
            if bucket is not None:
                heapq.heappop(self._overflow_heap)  # it is the heap's minimum: _next_event_tick said so
                self._overflow_count -= len(bucket)
                self._redistribute(bucket, tick, batch)
        bits = self._bits
        for level in range(min(trailing_zeros // bits, self._levels - 1), 0, -1):
            digit = (tick >> (level * bits)) & self._mask
            if self._occupied[level] >> digit & 1:
                slots = self._slots[level]
                bucket = slots[digit]
                slots[digit] = {}
                self._occupied[level] &= ~(1 << digit)
                self._redistribute(bucket, tick, batch)
        return batch

    def _redistribute(self, bucket: dict[Hashable, _Entry], tick: int, batch: list[_Entry]) -> None:
        # _place() inlined: cascades move each entry up to `levels` times, the hot path of a wheel
        # whose entries are sparse. _current == tick and every entry's tick is >= tick here.
        bits = self._bits
        mask = self._mask
        levels = self._levels
        slots = self._slots
        occupied = self._occupied
        for entry in bucket.values():
            entry_tick = entry.tick
            if entry_tick == tick:
                entry.level = _FIRING
                batch.append(entry)
                continue
            level = ((entry_tick ^ tick).bit_length() - 1) // bits
            if level >= levels:  # cannot come from a cascade, but _place knows what to do
                self._place(entry)
                continue
            slot = (entry_tick >> (level * bits)) & mask
            slots[level][slot][entry.key] = entry
            occupied[level] |= 1 << slot
            entry.level = level
            entry.slot = slot

    def _fire_due(self, now: float, target: int) -> int:
        ready = [entry for entry in self._due.values() if entry.tick <= target and entry.deadline <= now]
        if not ready:
            return 0
        for entry in ready:
            del self._due[entry.key]
            entry.level = _FIRING
        return self._fire(ready, now)

    def _fire(self, batch: list[_Entry], now: float) -> int:
        if len(batch) > 1:
            # Ticks already come in order; this orders the entries sharing one (and the overdue).
            batch.sort(key=_by_deadline)
        entries = self._entries
        fired = 0
        for index, entry in enumerate(batch):
            key = entry.key
            if entries.get(key) is not entry:
                continue  # cancelled or rescheduled by an earlier callback of this batch
            if entry.deadline > now:
                # Its tick is reached but float rounding puts the deadline a hair after now:
                # keep it for the next advance rather than fire early.
                entry.level = _DUE
                self._due[key] = entry
                continue
            del entries[key]
            fired += 1
            try:
                entry.callback(key)
            except Exception:
                log.exception("timer callback for %r raised", key)
            except BaseException:
                # Do not lose the rest of the tick: they fire on the next advance.
                for rest in batch[index + 1 :]:
                    if entries.get(rest.key) is rest:
                        rest.level = _DUE
                        self._due[rest.key] = rest
                raise
        return fired

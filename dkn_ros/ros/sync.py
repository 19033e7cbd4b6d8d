"""Approximate-time pairing of a colour and a depth stream, written here because
``message_filters`` cannot be installed from PyPI. Pure Python, no ROS import: stamps
are integer nanoseconds (see :func:`stamp_to_ns`) and messages are opaque objects.

Semantics of :class:`ApproximateTimePairer` (stream 0 = colour, 1 = depth)
--------------------------------------------------------------------------

Each stream has a queue of at most ``queue_size`` messages, oldest first. After every
:meth:`~ApproximateTimePairer.add` the queues are processed from their heads (oldest
messages):

1. If one queue is empty, nothing can be decided, except that messages that no future
   message can match are dropped at once (``'unmatched'``): a stream's messages more than
   ``slop`` older than the newest stamp already seen on the other stream, whose queue
   is empty (future messages there come later still).
2. The newer of the two heads is the *pivot* (depth on a tie). If the heads differ by
   more than ``slop``, the older head can match nothing (everything queued or still to
   come on the other stream is later still): it is dropped (``'unmatched'``) and
   processing goes on.
3. If the heads have the same stamp they are a pair (emitted at once).
4. If the pivot's stream has dropped messages on overflow (``queue_full``, see Memory)
   since the last time its head was the older one, the other head is dropped
   (``'queue_full'``): one of the lost messages may have been its better partner.
5. Otherwise the pivot's partner is the message of the other stream nearest in time to
   it, searched from that stream's head on (ties go to the older message). The choice is
   final only once the other stream holds a message stamped at or after the pivot (a
   later arrival cannot be nearer): until then the pairer waits. When final, the pair
   is emitted, the pivot and its partner are removed and the other stream's messages
   older than the partner are dropped (``'unmatched'``): *newest complete pair wins*,
   pairs come out in time order and no message is used twice.

Every emitted pair is within ``slop`` (``|colour stamp - depth stamp| <= slop``), and
every received message ends in exactly one place: a pair, a ``dropped`` reason, or
:meth:`~ApproximateTimePairer.pending`.

Arrival order. Stamps are expected not to decrease within a stream. A message older than
the newest one already seen on its stream is a late reorder and is dropped
(``'late'``), unless it is older by more than ``jump_threshold`` or ``queue_size`` late
messages in a row came before it on that stream (a small jump back, e.g. a bag shorter
than ``jump_threshold`` played in a loop). That is taken as the clock going back (a
rosbag played in a loop, a restarted simulation): both queues are cleared (their
messages counted as ``'clock_jump'``), the message starts a new epoch, and until the
other stream jumps back too, its messages stamped more than ``jump_threshold`` after
the new epoch's newest stamp are leftovers of the old epoch and are dropped
(``'clock_jump'``) as well.

Memory. When processing leaves a queue longer than ``queue_size`` its oldest message is
dropped (``'queue_full'``), so a flood on one stream while the other is silent keeps at
most ``queue_size`` messages per stream.

Relation to message_filters
---------------------------

The C++ ``message_filters::sync_policies::ApproximateTime`` policy takes the latest of
the queue heads as pivot, looks for the set containing it with the smallest time
spread, emits that set once no later message can give a smaller one and drops the
messages before it. For two streams the smallest-spread set for a pivot is the pivot
plus the other stream's message nearest to it, so steps 2-5 are that algorithm, for two
streams, with ``setMaxIntervalDuration(slop)``, ``setAgePenalty(0.0)`` (the C++ default
0.1 keeps the older partner unless the newer one is 10 % nearer) and no inter-message
lower bounds (which can prove a set optimal earlier). The only intended difference is
step 3: the C++ policy skips an exact-stamp pair while the depth stream is flagged by
step 4. ``test/test_sync.py`` replays the two-stream cases of message_filters' own
``test_approximate_time_policy.cpp`` (exact, perfect and imperfect matches,
acceleration, dropped messages with queues of 1 and 2, a long queue, double publish) and
gets its expected pairs. Out-of-order messages only make the C++ policy warn; here they
are dropped or reset the queues as described above.

As with the C++ policy, a pair is emitted when the message after the pivot on the other
stream arrives (exact stamps pair at once): expect up to one frame period of the other
stream in latency. :meth:`~ApproximateTimePairer.flush` decides what is pending when the
streams end (the end of a bag).

The Python ``message_filters.ApproximateTimeSynchronizer`` is a different, greedy
algorithm: each arriving message is paired at once with the queued message of the other
stream nearest to it (strictly within ``slop``), so a nearer message arriving just
after is missed, and older messages are only dropped when a queue overflows. For
messages arriving in stamp order it gives the same pairs as this class for equal stamps
and for a constant offset below ``slop``; with jitter (30 Hz colour, 10 Hz depth) it can
take a colour that the next one would beat, where this class gives each depth the
nearest colour.
"""

from __future__ import annotations

import numbers
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["COLOR", "DEPTH", "DROP_REASONS", "ApproximateTimePairer", "Pair", "stamp_to_ns"]

COLOR = 0
DEPTH = 1
#: Why messages are dropped: keys of :attr:`ApproximateTimePairer.dropped`.
DROP_REASONS = ("unmatched", "queue_full", "late", "clock_jump", "reset")

_NS = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time-like stamp (``sec``, ``nanosec``:
    rclpy and rosbags messages), an ``rclpy.time.Time`` (``nanoseconds``) or an integer."""
    if isinstance(stamp, numbers.Integral):
        return int(stamp)
    if hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        return int(stamp.sec) * _NS + int(stamp.nanosec)
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    raise TypeError(
        f"cannot read a time stamp from {type(stamp).__name__}: expected sec and nanosec "
        "(builtin_interfaces/Time), nanoseconds (rclpy Time) or an int"
    )


class Pair(NamedTuple):
    """A colour and a depth message whose stamps differ by at most the slop."""

    color: Any
    depth: Any
    color_stamp_ns: int
    depth_stamp_ns: int

    @property
    def spread_ns(self) -> int:
        """|colour stamp - depth stamp| in nanoseconds."""
        return abs(self.color_stamp_ns - self.depth_stamp_ns)


class ApproximateTimePairer:
    """Pairs colour (stream 0) and depth (stream 1) messages whose stamps differ by at
    most ``slop`` seconds; see the module docstring for the exact semantics.

    Args:
        queue_size: most messages kept per stream while waiting (>= 1).
        slop: largest stamp difference of a pair, in seconds (>= 0).
        callback: if given, called with each :class:`Pair` (after the internal lock is
            released, in time order) in addition to being returned by :meth:`add`.
        jump_threshold: a stamp more than this many seconds older than the newest one
            of its stream is a clock jump (queues reset), a smaller step back is a late
            message (dropped).

    Thread-safe: :meth:`add` may be called from several executor threads.
    """

    def __init__(
        self,
        queue_size: int = 10,
        slop: float = 0.02,
        callback: Callable[[Pair], Any] | None = None,
        jump_threshold: float = 1.0,
    ) -> None:
        if int(queue_size) != queue_size or queue_size < 1:
            raise ValueError(f"queue_size must be an integer >= 1, got {queue_size!r}")
        if not slop >= 0:  # also rejects NaN
            raise ValueError(f"slop must be >= 0 seconds, got {slop!r}")
        if not jump_threshold > 0:
            raise ValueError(f"jump_threshold must be > 0 seconds, got {jump_threshold!r}")
        self.queue_size = int(queue_size)
        self.slop = float(slop)
        self.slop_ns = round(slop * _NS)
        self.jump_threshold = float(jump_threshold)
        self.jump_threshold_ns = round(jump_threshold * _NS)
        self.callback = callback
        self._lock = threading.Lock()
        self._queues: tuple[deque[tuple[int, Any]], deque[tuple[int, Any]]] = (deque(), deque())
        self._last: list[int | None] = [None, None]  # newest stamp seen per stream
        self._old_epoch: list[bool] = [False, False]  # stream has not followed a jump yet
        self._overflowed: list[bool] = [False, False]  # dropped on overflow, see _process
        self._late_run: list[int] = [0, 0]  # consecutive late messages per stream
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._dropped_per_stream = [0, 0]
        self._received = [0, 0]
        self._pairs = 0
        self._clock_jumps = 0
        self._last_spread_ns: int | None = None

    # ------------------------------------------------------------------ public API

    def add(self, stream: int, stamp_ns: int, msg: Any) -> list[Pair]:
        """Queue ``msg`` of ``stream`` (0 = colour, 1 = depth) stamped ``stamp_ns``
        (integer nanoseconds) and return the pairs this completes, oldest first (often
        none, rarely more than one; a node that only wants the newest takes ``[-1]``)."""
        if stream not in (COLOR, DEPTH):
            raise ValueError(f"stream must be 0 (colour) or 1 (depth), got {stream!r}")
        stamp_ns = int(stamp_ns)
        with self._lock:
            self._received[stream] += 1
            pairs = self._add(stream, stamp_ns, msg)
        self._notify(pairs)
        return pairs

    def flush(self) -> list[Pair]:
        """Decide everything pending as if both streams had ended (no more messages):
        emit the pairs that are complete with what is queued and drop the rest
        (``'unmatched'``). The stamps seen stay remembered (late detection goes on)."""
        with self._lock:
            pairs = self._process(final=True)
            for stream in (COLOR, DEPTH):
                self._drop_all(stream, "unmatched")
        self._notify(pairs)
        return pairs

    def pending(self) -> tuple[int, int]:
        """Messages waiting in the (colour, depth) queues."""
        with self._lock:
            return len(self._queues[COLOR]), len(self._queues[DEPTH])

    def reset(self, clear_stats: bool = False) -> None:
        """Forget queued messages (counted as dropped ``'reset'``) and the stamps seen;
        with ``clear_stats`` also zero the counters."""
        with self._lock:
            for stream in (COLOR, DEPTH):
                self._drop_all(stream, "reset")
            self._last = [None, None]
            self._old_epoch = [False, False]
            self._overflowed = [False, False]
            self._late_run = [0, 0]
            if clear_stats:
                self._dropped = dict.fromkeys(DROP_REASONS, 0)
                self._dropped_per_stream = [0, 0]
                self._received = [0, 0]
                self._pairs = 0
                self._clock_jumps = 0
                self._last_spread_ns = None

    @property
    def dropped(self) -> dict[str, int]:
        """Messages dropped so far by reason (a copy): ``unmatched`` (no partner within
        slop, or passed over by a newer pair), ``queue_full``, ``late`` (stamp older than
        the stream's newest), ``clock_jump`` and ``reset``."""
        with self._lock:
            return dict(self._dropped)

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters: ``received`` and ``dropped_per_stream`` as
        [colour, depth], ``pairs``, ``dropped`` by reason, ``clock_jumps`` (events),
        ``pending`` [colour, depth] and ``last_spread_ns`` (None before the first pair).
        Every received message is in exactly one of: a pair, dropped, pending."""
        with self._lock:
            return {
                "received": list(self._received),
                "pairs": self._pairs,
                "dropped": dict(self._dropped),
                "dropped_per_stream": list(self._dropped_per_stream),
                "clock_jumps": self._clock_jumps,
                "pending": [len(self._queues[COLOR]), len(self._queues[DEPTH])],
                "last_spread_ns": self._last_spread_ns,
            }

    def __repr__(self) -> str:
        return (
            f"ApproximateTimePairer(queue_size={self.queue_size}, slop={self.slop}, "
            f"jump_threshold={self.jump_threshold})"
        )

    # ------------------------------------------------------------------ internals

    def _notify(self, pairs: list[Pair]) -> None:
        if self.callback is not None:
            for pair in pairs:
                self.callback(pair)

    def _drop(self, stream: int, reason: str, count: int = 1) -> None:
        self._dropped[reason] += count
        self._dropped_per_stream[stream] += count

    def _drop_all(self, stream: int, reason: str) -> None:
        queue = self._queues[stream]
        if queue:
            self._drop(stream, reason, len(queue))
            queue.clear()

    def _add(self, stream: int, stamp: int, msg: Any) -> list[Pair]:
        other = 1 - stream
        if self._old_epoch[stream]:
            # The other stream jumped back; this one has not yet. A stamp well after the
            # new epoch's newest is a leftover of the old epoch.
            reference = self._last[other]
            if reference is not None and stamp - reference > self.jump_threshold_ns:
                self._drop(stream, "clock_jump")
                return []
            self._old_epoch[stream] = False  # this stream now follows the new epoch
        last = self._last[stream]
        if last is not None and stamp < last:
            if last - stamp <= self.jump_threshold_ns and self._late_run[stream] < self.queue_size:
                self._late_run[stream] += 1
                self._drop(stream, "late")
                return []
            # The clock went back (far, or for longer than a reorder lasts): start a new
            # epoch with this message.
            self._clock_jumps += 1
            for each in (COLOR, DEPTH):
                self._drop_all(each, "clock_jump")
            self._overflowed = [False, False]
            other_last = self._last[other]
            self._old_epoch[other] = (
                other_last is not None and other_last - stamp > self.jump_threshold_ns
            )
            if self._old_epoch[other]:
                self._last[other] = None
        self._late_run[stream] = 0
        self._last[stream] = stamp  # accepted: in order, or the first of a new epoch
        self._queues[stream].append((stamp, msg))

        pairs = self._process(final=False)
        while len(self._queues[stream]) > self.queue_size:
            self._queues[stream].popleft()
            self._drop(stream, "queue_full")
            self._overflowed[stream] = True
            pairs.extend(self._process(final=False))
        return pairs

    def _process(self, final: bool) -> list[Pair]:
        """Emit every pair that is decided (all of them with ``final``: no more
        messages will come) and drop what can no longer be paired."""
        pairs: list[Pair] = []
        queues = self._queues
        slop = self.slop_ns
        while queues[COLOR] and queues[DEPTH]:
            color_stamp = queues[COLOR][0][0]
            depth_stamp = queues[DEPTH][0][0]
            # The pivot is the newer head (depth on a tie, as in message_filters).
            pivot = COLOR if color_stamp > depth_stamp else DEPTH
            other = 1 - pivot
            # The other stream's head is older than the pivot: nothing it dropped on
            # overflow could have been the pivot's better partner any more.
            self._overflowed[other] = False
            if abs(color_stamp - depth_stamp) > slop:
                queues[other].popleft()  # the older head: nothing can match it
                self._drop(other, "unmatched")
                continue
            if color_stamp == depth_stamp:
                pairs.append(self._emit())
                continue
            if self._overflowed[pivot]:
                # A message the pivot's stream dropped on overflow may have been the
                # other head's better partner: do not pair that head with a worse one.
                queues[other].popleft()
                self._drop(other, "queue_full")
                continue
            pivot_stamp = queues[pivot][0][0]
            candidates = queues[other]
            best = 0
            best_distance = pivot_stamp - candidates[0][0]  # > 0: the head is older
            decided = final
            for index in range(1, len(candidates)):
                distance = candidates[index][0] - pivot_stamp
                if distance >= 0:  # at or after the pivot: nothing later can be nearer
                    if distance < best_distance:
                        best = index
                    decided = True
                    break
                if -distance < best_distance:  # strictly nearer: ties keep the older
                    best, best_distance = index, -distance
            if not decided:
                break
            for _ in range(best):  # passed over by the newer pair
                candidates.popleft()
                self._drop(other, "unmatched")
            pairs.append(self._emit())
        for stream in (COLOR, DEPTH):
            other_last = self._last[1 - stream]
            if not queues[1 - stream] and other_last is not None:
                queue = queues[stream]
                while queue and other_last - queue[0][0] > slop:
                    queue.popleft()
                    self._drop(stream, "unmatched")
        return pairs

    def _emit(self) -> Pair:
        """Pair the two queue heads."""
        color_stamp, color = self._queues[COLOR].popleft()
        depth_stamp, depth = self._queues[DEPTH].popleft()
        pair = Pair(color, depth, color_stamp, depth_stamp)
        self._pairs += 1
        self._last_spread_ns = pair.spread_ns
        return pair

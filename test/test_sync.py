"""Tests of dkn_ros.ros.sync: approximate-time pairing of colour and depth with
message_filters' ApproximateTime semantics (pure Python, no ROS)."""

from __future__ import annotations

import random
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from dkn_ros.ros.sync import COLOR, DEPTH, DROP_REASONS, ApproximateTimePairer, Pair, stamp_to_ns

MS = 1_000_000
S = 1_000_000_000


def feed(pairer: ApproximateTimePairer, events) -> list[Pair]:
    """Add (stream, stamp_ns, msg) events in order; return every pair emitted."""
    pairs: list[Pair] = []
    for stream, stamp, msg in events:
        pairs.extend(pairer.add(stream, stamp, msg))
    return pairs


def stamps_of(pairs: list[Pair]) -> list[tuple[int, int]]:
    return [(p.color_stamp_ns, p.depth_stamp_ns) for p in pairs]


def assert_accounted(pairer: ApproximateTimePairer) -> None:
    """Every received message is in a pair, dropped for a reason, or pending."""
    stats = pairer.stats
    dropped = sum(stats["dropped"].values())
    assert sum(stats["received"]) == 2 * stats["pairs"] + dropped + sum(stats["pending"])
    assert sum(stats["dropped_per_stream"]) == dropped
    assert set(stats["dropped"]) == set(DROP_REASONS)


def in_stamp_order(colors: list[int], depths: list[int]) -> list[tuple[int, int, object]]:
    """Events arriving in stamp order (colour first on a tie); msg = (stream, index)."""
    events = [(COLOR, t, (COLOR, i)) for i, t in enumerate(colors)]
    events += [(DEPTH, t, (DEPTH, i)) for i, t in enumerate(depths)]
    return sorted(events, key=lambda e: (e[1], e[0]))


def with_latency(colors, depths, rng: random.Random, max_latency_ns: int):
    """Events arriving at stamp + a random latency, each stream in its own order, the
    two streams interleaved however the latencies fall; msg = (stream, index)."""
    timed = []
    for stream, stamps in ((COLOR, colors), (DEPTH, depths)):
        arrival = -1
        for i, t in enumerate(stamps):
            arrival = max(arrival + 1, t + rng.randint(0, max_latency_ns))
            timed.append((arrival, rng.random(), (stream, t, (stream, i))))
    return [event for _, _, event in sorted(timed)]


def reference_pairs(colors: list[int], depths: list[int], slop_ns: int) -> list[tuple[int, int]]:
    """The documented semantics stated offline, with everything known in advance
    (in-order streams, unbounded queues), as (colour index, depth index) pairs: from the
    two oldest remaining messages, drop the older if they are more than slop apart;
    otherwise the newer (depth on a tie) is the pivot and takes the remaining message of
    the other stream nearest to it (ties: the older), dropping those before it."""
    i = j = 0
    pairs = []
    while i < len(colors) and j < len(depths):
        c, d = colors[i], depths[j]
        if abs(c - d) > slop_ns:
            if c < d:
                i += 1
            else:
                j += 1
        elif c > d:  # colour is the pivot
            k = min(range(j, len(depths)), key=lambda k: (abs(depths[k] - c), k))
            pairs.append((i, k))
            i, j = i + 1, k + 1
        else:  # depth is the pivot
            k = min(range(i, len(colors)), key=lambda k: (abs(colors[k] - d), k))
            pairs.append((k, j))
            i, j = k + 1, j + 1
    return pairs


def indices_of(pairs: list[Pair]) -> list[tuple[int, int]]:
    return [(p.color[1], p.depth[1]) for p in pairs]


def random_stamps(rng, start_ns, period_ns, count, jitter_ns, drop_probability, grid_ns=1):
    stamps, last = [], None
    for k in range(count):
        if rng.random() < drop_probability:
            continue
        t = start_ns + k * period_ns + rng.randint(-jitter_ns, jitter_ns)
        t = t // grid_ns * grid_ns
        last = t if last is None else max(last, t)  # never decreasing within a stream
        stamps.append(last)
    return stamps


# --------------------------------------------------------------------------- basics


def test_exact_stamps_pair_at_once():
    pairer = ApproximateTimePairer()
    color, depth = object(), object()
    assert pairer.add(COLOR, 5 * S, color) == []
    assert pairer.pending() == (1, 0)
    (pair,) = pairer.add(DEPTH, 5 * S, depth)
    assert pair == Pair(color, depth, 5 * S, 5 * S)
    assert pair.spread_ns == 0
    assert pairer.pending() == (0, 0)
    assert pairer.stats["pairs"] == 1 and pairer.stats["last_spread_ns"] == 0
    assert_accounted(pairer)


def test_within_slop_pairs_once_no_nearer_message_can_come():
    pairer = ApproximateTimePairer(slop=0.02)
    assert pairer.add(COLOR, 1000 * MS, "c0") == []
    # Depth 15 ms later: a colour at 1015 +- 15 ms could still come and be nearer.
    assert pairer.add(DEPTH, 1015 * MS, "d0") == []
    assert pairer.pending() == (1, 1)
    # The next colour is 25 ms after the depth: farther, so c0 is the partner.
    (pair,) = pairer.add(COLOR, 1040 * MS, "c1")
    assert (pair.color, pair.depth, pair.spread_ns) == ("c0", "d0", 15 * MS)
    assert pairer.pending() == (1, 0)
    assert_accounted(pairer)


def test_a_nearer_later_message_wins():
    pairer = ApproximateTimePairer(slop=0.02)
    pairer.add(DEPTH, 1000 * MS, "d0")
    assert pairer.add(COLOR, 985 * MS, "c-15") == []
    (pair,) = pairer.add(COLOR, 1005 * MS, "c+5")
    assert (pair.color, pair.depth) == ("c+5", "d0")
    assert pairer.dropped["unmatched"] == 1  # c-15, passed over
    assert_accounted(pairer)


@pytest.mark.parametrize(("offset_ns", "paired"), [(20 * MS, True), (20 * MS + 1, False)])
def test_slop_is_inclusive(offset_ns, paired):
    pairer = ApproximateTimePairer(slop=0.02)
    pairer.add(COLOR, 1 * S, "c")
    pairer.add(DEPTH, 1 * S + offset_ns, "d")
    pairs = pairer.flush()
    assert len(pairs) == int(paired)
    assert pairer.dropped["unmatched"] == (0 if paired else 2)
    assert pairer.pending() == (0, 0)
    assert_accounted(pairer)


def test_outside_slop_the_older_is_dropped_at_once():
    pairer = ApproximateTimePairer(slop=0.02)
    pairer.add(COLOR, 1000 * MS, "c")
    assert pairer.add(DEPTH, 1030 * MS, "d") == []
    assert pairer.pending() == (0, 1)
    assert pairer.dropped["unmatched"] == 1
    # A colour older than the newest depth by more than slop can match nothing.
    assert pairer.add(COLOR, 1005 * MS, "c-late-stream") == []
    assert pairer.pending() == (0, 1) and pairer.dropped["unmatched"] == 2
    assert_accounted(pairer)


def test_flush_emits_what_is_pending_and_empties_the_queues():
    pairer = ApproximateTimePairer(slop=0.02)
    feed(pairer, [(COLOR, 990 * MS, "c0"), (DEPTH, 1000 * MS, "d0"), (DEPTH, 1100 * MS, "d1")])
    assert pairer.pending() == (1, 2)
    (pair,) = pairer.flush()
    assert (pair.color, pair.depth) == ("c0", "d0")
    assert pairer.pending() == (0, 0)
    assert pairer.dropped["unmatched"] == 1  # d1
    assert_accounted(pairer)


def test_constant_offset_pairs_every_frame():
    period = 33_333_333
    colors = [k * period for k in range(60)]
    depths = [t + 5 * MS for t in colors]
    pairer = ApproximateTimePairer(slop=0.02)
    pairs = feed(pairer, in_stamp_order(colors, depths)) + pairer.flush()
    assert indices_of(pairs) == [(k, k) for k in range(60)]
    assert sum(pairer.dropped.values()) == 0


def test_30hz_colour_10hz_depth_pairs_each_depth_with_the_nearest_colour():
    rng = random.Random(3)
    colors = random_stamps(rng, 0, 33_333_333, 300, 3 * MS, 0.0)
    depths = random_stamps(rng, 7 * MS, 100 * MS, 100, 3 * MS, 0.0)
    pairer = ApproximateTimePairer(queue_size=10, slop=0.02)
    pairs = feed(pairer, with_latency(colors, depths, rng, 30 * MS)) + pairer.flush()
    nearest = [min(range(len(colors)), key=lambda k: (abs(colors[k] - d), k)) for d in depths]
    assert indices_of(pairs) == list(zip(nearest, range(len(depths)), strict=True))
    assert pairer.dropped["unmatched"] == len(colors) - len(depths)
    assert pairer.dropped["queue_full"] == 0
    assert_accounted(pairer)


# --------------------------------------------------------------------------- drops


def test_newest_pair_wins_over_older_colours():
    pairer = ApproximateTimePairer(slop=0.02)
    feed(pairer, [(COLOR, 90 * MS, "c90"), (COLOR, 95 * MS, "c95"), (COLOR, 100 * MS, "c100")])
    (pair,) = pairer.add(DEPTH, 100 * MS, "d100")
    assert (pair.color, pair.depth) == ("c100", "d100")
    assert pairer.dropped == {**dict.fromkeys(DROP_REASONS, 0), "unmatched": 2}
    assert pairer.stats["dropped_per_stream"] == [2, 0]
    assert pairer.pending() == (0, 0)


def test_newest_pair_wins_over_an_older_depth():
    pairer = ApproximateTimePairer(slop=0.02)
    feed(pairer, [(DEPTH, 80 * MS, "d80"), (DEPTH, 100 * MS, "d100")])
    (pair,) = pairer.add(COLOR, 99 * MS, "c99")
    assert (pair.color, pair.depth) == ("c99", "d100")
    assert pairer.dropped["unmatched"] == 1
    assert pairer.stats["dropped_per_stream"] == [0, 1]
    # d80 is gone: a colour near it now is too old for the newest depth seen.
    assert pairer.add(COLOR, 100 * MS, "c100") == []
    assert_accounted(pairer)


def test_duplicate_stamps_are_used_oldest_first():
    pairer = ApproximateTimePairer(slop=0.02)
    feed(pairer, [(COLOR, 95 * MS, "first"), (COLOR, 95 * MS, "second")])
    (pair,) = pairer.add(DEPTH, 100 * MS, "d100") + pairer.add(COLOR, 130 * MS, "c130")
    assert (pair.color, pair.depth) == ("first", "d100")
    assert pairer.pending() == (2, 0)  # "second" and c130 wait for the next depth
    (pair,) = pairer.add(DEPTH, 110 * MS, "d110")
    assert (pair.color, pair.depth) == ("second", "d110")
    assert_accounted(pairer)


def test_messages_are_used_at_most_once():
    rng = random.Random(11)
    colors = random_stamps(rng, 0, 20 * MS, 400, 8 * MS, 0.2, grid_ns=MS)
    depths = random_stamps(rng, 0, 15 * MS, 500, 8 * MS, 0.2, grid_ns=MS)
    pairer = ApproximateTimePairer(queue_size=4, slop=0.015)
    pairs = feed(pairer, with_latency(colors, depths, rng, 60 * MS)) + pairer.flush()
    used_colors = [p.color for p in pairs]
    used_depths = [p.depth for p in pairs]
    assert len(set(used_colors)) == len(used_colors)
    assert len(set(used_depths)) == len(used_depths)
    assert all(p.spread_ns <= 15 * MS for p in pairs)
    assert [p.depth_stamp_ns for p in pairs] == sorted(p.depth_stamp_ns for p in pairs)
    assert [p.color_stamp_ns for p in pairs] == sorted(p.color_stamp_ns for p in pairs)
    assert_accounted(pairer)


@pytest.mark.parametrize("flooded", [COLOR, DEPTH])
def test_queue_stays_bounded_under_a_flood(flooded):
    pairer = ApproximateTimePairer(queue_size=5, slop=0.02)
    period = 33_333_333
    for k in range(2000):
        pairer.add(flooded, k * period, k)
        assert max(pairer.pending()) <= 5
    assert pairer.pending()[flooded] == 5
    assert pairer.dropped["queue_full"] == 1995
    # The other stream comes back: pairing resumes with the newest queued message.
    (pair,) = pairer.add(1 - flooded, 1999 * period, "back")
    assert (pair.color_stamp_ns, pair.depth_stamp_ns) == (1999 * period, 1999 * period)
    assert pairer.pending() == (0, 0)
    assert_accounted(pairer)


def test_late_message_is_dropped():
    pairer = ApproximateTimePairer(slop=0.02)
    pairer.add(COLOR, 100 * MS, "c100")
    assert pairer.add(COLOR, 90 * MS, "c90") == []
    assert pairer.dropped["late"] == 1
    assert pairer.pending() == (1, 0)
    (pair,) = pairer.add(DEPTH, 100 * MS, "d100")
    assert pair.color == "c100"
    assert pairer.stats["clock_jumps"] == 0
    assert_accounted(pairer)


# --------------------------------------------------------------------------- clock jumps


def bag_pass(start_ns: int, frames: int, period: int = 33_333_333):
    colors = [start_ns + k * period for k in range(frames)]
    depths = [t + 2 * MS for t in colors]
    return colors, depths


def test_clock_jump_back_resets_the_queues_and_counts():
    pairer = ApproximateTimePairer(queue_size=10, slop=0.02, jump_threshold=1.0)
    colors, depths = bag_pass(100 * S, 90)  # a 3 s bag
    first = feed(pairer, in_stamp_order(colors, depths))
    assert len(first) == 89  # the last depth waits for a colour after it
    assert pairer.pending() == (1, 1)

    # The bag loops: the colour stream jumps back first; a depth of the old pass is
    # still in flight.
    assert pairer.add(COLOR, colors[0], "c0 again") == []
    stats = pairer.stats
    assert stats["clock_jumps"] == 1
    assert stats["dropped"]["clock_jump"] == 2  # the two queued messages
    assert pairer.pending() == (1, 0)
    assert pairer.add(DEPTH, depths[-1] + 33 * MS, "old-pass depth") == []
    assert pairer.dropped["clock_jump"] == 3
    assert pairer.pending() == (1, 0)

    second = feed(pairer, in_stamp_order(colors[1:], depths))
    assert stamps_of(second) == list(zip(colors, depths, strict=True))[:89]
    assert pairer.dropped["late"] == 0 and pairer.stats["clock_jumps"] == 1
    assert_accounted(pairer)


def test_a_loop_shorter_than_the_jump_threshold_recovers():
    pairer = ApproximateTimePairer(queue_size=5, slop=0.02, jump_threshold=1.0)
    colors, depths = bag_pass(100 * S, 15)  # a 0.5 s bag: each pass steps back 0.47 s
    feed(pairer, in_stamp_order(colors, depths))
    second = feed(pairer, in_stamp_order(colors, depths))
    # queue_size (5) late messages per stream, then the step back is a clock jump: the
    # colour stream's first (its 6th message), then the depth stream's (which clears the
    # colour queue once more); pairing resumes from frame 6.
    assert pairer.stats["clock_jumps"] == 2
    assert pairer.dropped["late"] == 2 * 5
    assert stamps_of(second) == list(zip(colors, depths, strict=True))[6:14]
    assert_accounted(pairer)


def test_reset_forgets_queues_and_stamps():
    pairer = ApproximateTimePairer(slop=0.02)
    feed(pairer, [(COLOR, 10 * S, "c"), (COLOR, 11 * S, "c2")])
    pairer.reset()
    assert pairer.pending() == (0, 0)
    assert pairer.dropped["reset"] == 2
    (pair,) = feed(pairer, [(COLOR, 1 * S, "c"), (DEPTH, 1 * S, "d")])  # not late
    assert pair.color == "c"
    assert_accounted(pairer)
    pairer.reset(clear_stats=True)
    assert pairer.stats["received"] == [0, 0] and sum(pairer.dropped.values()) == 0


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("seed", range(12))
def test_matches_the_reference_for_random_streams(seed):
    """Random rates, jitter, dropouts, stamps on a 1 ms grid (so ties happen) and random
    arrival interleaving: the online pairer emits exactly the offline reference's pairs."""
    rng = random.Random(seed)
    slop = rng.choice([5, 10, 20, 30]) * MS
    colors = random_stamps(
        rng, rng.randint(0, 50) * MS, rng.randint(10, 60) * MS, 120, 5 * MS, 0.15, MS
    )
    depths = random_stamps(
        rng, rng.randint(0, 50) * MS, rng.randint(10, 120) * MS, 120, 5 * MS, 0.15, MS
    )
    pairer = ApproximateTimePairer(queue_size=10_000, slop=slop / S)
    pairs = feed(pairer, with_latency(colors, depths, rng, rng.choice([0, 20, 200]) * MS))
    pairs += pairer.flush()
    assert indices_of(pairs) == reference_pairs(colors, depths, slop)
    assert pairer.dropped["queue_full"] == 0 and pairer.dropped["late"] == 0
    assert_accounted(pairer)


@pytest.mark.parametrize("seed", range(6))
def test_slow_depth_gets_the_nearest_colour_by_brute_force(seed):
    """Depth slower than 2 * slop between frames (the DKN case: 10 Hz depth, 30 Hz
    colour, both with jitter and dropouts): every depth that has a colour within slop
    gets the nearest colour of the whole stream, whatever the arrival interleaving."""
    rng = random.Random(100 + seed)
    slop = 20 * MS
    colors = random_stamps(rng, 0, 33_333_333, 240, 4 * MS, 0.2)
    depths = random_stamps(rng, rng.randint(0, 100) * MS, 100 * MS, 80, 4 * MS, 0.1)
    pairer = ApproximateTimePairer(queue_size=20, slop=slop / S)
    pairs = feed(pairer, with_latency(colors, depths, rng, 50 * MS)) + pairer.flush()
    expected = []
    for j, d in enumerate(depths):
        k = min(range(len(colors)), key=lambda k: (abs(colors[k] - d), k))
        if abs(colors[k] - d) <= slop:
            expected.append((k, j))
    assert indices_of(pairs) == expected
    assert_accounted(pairer)


# Two-stream cases of message_filters' test_approximate_time_policy.cpp (ROS 2), with
# times in seconds, an unbounded interval (huge slop) and (stamp, stream) arrivals.
CPP_CASES = {
    "ExactMatch": (10, [(0, 0), (0, 1), (3, 0), (3, 1), (6, 0), (6, 1)], [(0, 0), (3, 3), (6, 6)]),
    "PerfectMatch": (10, [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4)]),
    "ImperfectMatch": (
        10,
        [(0, 0), (1, 1), (2, 0), (3, 0), (5, 1), (6, 0), (7, 1)],
        [(0, 1), (6, 5)],
    ),
    "Acceleration": (10, [(0, 0), (7, 1), (12, 0), (15, 1), (17, 0), (18, 1)], [(12, 7), (17, 18)]),
    "DroppedMessagesQueue1": (
        1,
        [(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0), (14, 1)],
        [(4, 3), (10, 11)],
    ),
    "DroppedMessagesQueue2": (
        2,
        [(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0), (14, 1)],
        [(0, 1), (4, 3), (8, 7), (10, 11)],
    ),
    "LongQueue": (
        5,
        [(t, 0) for t in range(9)] + [(3, 1)] + [(t, 0) for t in range(9, 13)] + [(10, 1), (13, 0)],
        [(10, 10)],
    ),
    "DoublePublish": (10, [(0, 0), (1, 1), (3, 1), (3, 0)], [(0, 1), (3, 3)]),
}


@pytest.mark.parametrize("case", list(CPP_CASES))
def test_message_filters_cpp_cases(case):
    queue_size, arrivals, expected = CPP_CASES[case]
    pairer = ApproximateTimePairer(queue_size=queue_size, slop=1e6, jump_threshold=1e6)
    pairs = feed(pairer, [(stream, t * S, (stream, t)) for t, stream in arrivals])
    assert [(p.color_stamp_ns // S, p.depth_stamp_ns // S) for p in pairs] == expected
    assert_accounted(pairer)


# --------------------------------------------------------------------------- API


def test_callback_receives_each_pair():
    received = []
    pairer = ApproximateTimePairer(slop=0.02, callback=received.append)
    pairs = feed(pairer, in_stamp_order([0, 100 * MS], [0, 100 * MS]))
    assert received == pairs and len(pairs) == 2


def test_concurrent_adds_are_accounted():
    pairer = ApproximateTimePairer(queue_size=8, slop=0.02)
    period = 33_333_333

    def produce(stream):
        for k in range(1500):
            pairer.add(stream, k * period, (stream, k))

    threads = [threading.Thread(target=produce, args=(s,)) for s in (COLOR, DEPTH)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pairer.flush()
    assert pairer.stats["received"] == [1500, 1500]
    assert pairer.stats["pairs"] > 0
    assert_accounted(pairer)


def test_stamp_to_ns():
    builtin_interfaces = pytest.importorskip("builtin_interfaces.msg")
    assert stamp_to_ns(builtin_interfaces.Time(sec=12, nanosec=345)) == 12 * S + 345
    assert stamp_to_ns(SimpleNamespace(sec=1700000000, nanosec=999_999_999)) == (
        1700000000 * S + 999_999_999
    )
    assert stamp_to_ns(SimpleNamespace(nanoseconds=42)) == 42
    assert stamp_to_ns(7) == 7
    assert type(stamp_to_ns(np.int64(7))) is int
    with pytest.raises(TypeError, match="cannot read a time stamp from str"):
        stamp_to_ns("12:00")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"queue_size": 0}, "queue_size must be an integer >= 1, got 0"),
        ({"queue_size": 2.5}, "queue_size must be an integer >= 1, got 2.5"),
        ({"slop": -0.01}, "slop must be >= 0 seconds, got -0.01"),
        ({"slop": float("nan")}, "slop must be >= 0 seconds, got nan"),
        ({"jump_threshold": 0}, "jump_threshold must be > 0 seconds, got 0"),
    ],
)
def test_invalid_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ApproximateTimePairer(**kwargs)


def test_invalid_stream():
    with pytest.raises(ValueError, match=r"stream must be 0 \(colour\) or 1 \(depth\), got 2"):
        ApproximateTimePairer().add(2, 0, None)

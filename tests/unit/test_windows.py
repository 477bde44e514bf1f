"""Window traits equal a brute-force recomputation over random streams, late events included."""

from __future__ import annotations

import pickle
import random

import pytest

from operators.profile360.windows import DAY_MS, METRICS, TIERS, WINDOWS, Windows


def brute_force(events, metric, window, now):
    tier, span = WINDOWS[window]
    size = TIERS[tier][0]
    start = (now // size - span + 1) * size
    vals = [v[metric] for t, v in events if start <= t <= now and metric in v]
    kind = METRICS[metric]
    if kind == "count":
        return sum(vals)
    if kind == "distinct":
        return len(set(vals))
    if not vals:
        return (0, 0.0, None, None)
    return (len(vals), sum(vals), min(vals), max(vals))


@pytest.mark.parametrize("seed", range(25))
def test_windows_match_brute_force_with_late_and_out_of_order_events(seed):
    rng = random.Random(seed)
    t = 1_767_225_600_000 + rng.randrange(DAY_MS)
    events = []
    w = Windows()
    for _ in range(rng.randrange(50, 400)):
        t += rng.choice([1_000, 60_000, 600_000, 3_600_000, 5 * 3_600_000])
        when = t - rng.choice([0, 0, 0, 120_000, 3_600_000, 3 * DAY_MS, 40 * DAY_MS])  # some late
        values = {
            "events": 1,
            "spend": round(rng.uniform(1, 100), 2),
            "channels": rng.choice("abcde"),
        }
        events.append((when, values))
        w.add(when, values)
    newest = max(e[0] for e in events)
    for now in (newest, newest + 30 * 60_000, newest + 2 * DAY_MS):
        for window in WINDOWS:
            for metric in ("events", "spend", "channels"):
                got = w.query(metric, window, now)
                want = brute_force(events, metric, window, now)
                if METRICS[metric] == "value" and want[0]:
                    assert got[0] == want[0] and got[2:] == want[2:]
                    assert got[1] == pytest.approx(want[1])
                else:
                    assert got == want, (window, metric, now)


@pytest.mark.parametrize("seed", range(15))
def test_what_rules_read_when_a_late_event_arrives_matches_brute_force_at_the_customers_present(seed):
    """At each late event the rules read the windows at the customer's present (newest event
    time), through the rule context: exact, whatever the event's own time."""
    from livesignals.errors import Origin
    from operators.profile360.profile import CustomerState
    from operators.rules.context import context
    from tests.helpers import event as doc

    rng = random.Random(seed)
    t = 1_767_225_600_000 + rng.randrange(DAY_MS)
    events, state, checked = [], CustomerState("customer_id:c1"), 0
    for i in range(rng.randrange(50, 300)):
        t += rng.choice([1_000, 60_000, 600_000, 3_600_000, 5 * 3_600_000])
        late = rng.choice([0, 0, 0, 120_000, 50 * 60_000, 3 * 3_600_000, 3 * DAY_MS, 40 * DAY_MS])
        values = {"events": 1, "spend": round(rng.uniform(1, 100), 2), "errors": rng.choice([0, 1])}
        events.append((t - late, values))
        state.windows.add(t - late, values)
        if not late:
            continue
        present = max(e[0] for e in events)
        d = doc("web_event", t=t - late, action="page_view")
        e = decode_event(d, Origin("in", 0, i))
        ctx = context(state, e, present=present)
        for root, window in (("w1h", "1h"), ("w24h", "24h"), ("w7d", "7d"), ("w30d", "30d")):
            assert ctx[root].get("events") == brute_force(events, "events", window, present), (root, late)
            assert ctx[root].get("errors") == brute_force(events, "errors", window, present), (root, late)
            assert ctx[root].get("spend") == pytest.approx(brute_force(events, "spend", window, present)[1])
        checked += 1
    assert checked > 10


def decode_event(d, origin):
    from livesignals import serde
    from livesignals.contract import decode

    return decode(serde.dumps(d), origin, now_ms=d["event_time"])


def test_buckets_stay_bounded():
    w = Windows()
    for i in range(12_000):  # 41 days at one event per 5 minutes
        w.add(i * 300_000, {"events": 1})
    # the current hour and day live in finer buckets until they roll up
    assert {tier: len(b) for tier, b in w.buckets.items()} == {"5m": 12, "1h": 23, "1d": 29}


def test_pickle_round_trip():
    w = Windows()
    w.add(0, {"events": 1, "channels": "web"})
    assert pickle.loads(pickle.dumps(w)) == w


def test_summary_is_every_query_at_once():
    """``summary`` (every 360 read) answers from one pass per window what ``query`` answers metric by metric."""
    rng = random.Random(7)
    w = Windows()
    t = 1_767_225_600_000
    for _ in range(400):
        t += rng.randrange(0, 3 * 3_600_000)
        late = t - rng.randrange(0, 40 * 86_400_000) if rng.random() < 0.2 else t
        w.add(late, {"events": 1, "spend": rng.choice([0.0, 12.5, 40.0]), "channels": rng.choice(["web", "chat"])})
        for now in (t, t + 1, t + 3_600_000, t + 8 * 86_400_000):
            assert w.summary(now) == {win: {m: w.query(m, win, now) for m in w.kinds} for win in WINDOWS}


def test_totals_are_the_queries_of_every_count_and_value_metric():
    """``totals`` (what rules and churn features read) gives, for every count and value metric, what ``query``
    gives, to the float, at times inside, after and long before the buckets; distinct metrics are left out."""
    rng = random.Random(11)
    w = Windows()
    t = 1_767_225_600_000
    for _ in range(400):
        t += rng.randrange(0, 3 * 3_600_000)
        late = t - rng.randrange(0, 40 * 86_400_000) if rng.random() < 0.2 else t
        w.add(late, {"events": 1, "spend": rng.choice([0.0, 12.5, 40.1]), "channels": rng.choice(["web", "chat"]),
                     "errors": rng.choice([0, 1, 2])})  # fmt: skip
        for now in (t, t + 1, t + 3_600_000, t + 8 * 86_400_000, 0):
            for window in WINDOWS:
                got = w.totals(window, now)
                for metric, kind in METRICS.items():
                    if kind == "count":
                        assert got.get(metric, 0) == w.query(metric, window, now)
                    elif kind == "value":
                        assert got.get(metric, 0.0) == w.query(metric, window, now)[1]
                    else:
                        assert metric not in got


def _scan_totals(w, window, now):
    """What ``Windows.totals`` computed before its per-tier sums (one scan of every bucket in range): the
    reference its sums must equal to the last bit and in key order."""
    tier, span = WINDOWS[window]
    start = (now // TIERS[tier][0] - span + 1) * TIERS[tier][0]
    out: dict[str, float] = {}
    for name, (size, _) in TIERS.items():
        for k, bucket in w.buckets.get(name, {}).items():
            if start <= k * size <= now:
                for metric, cell in bucket.items():
                    if type(cell) is int:
                        out[metric] = out.get(metric, 0) + cell
                    elif METRICS.get(metric, "count") == "value":
                        out[metric] = out.get(metric, 0.0) + cell[1]
        if name == tier:
            break
    return out


@pytest.mark.parametrize("reads_every", [1, 7])
@pytest.mark.parametrize("seed", range(8))
def test_totals_from_per_tier_sums_equal_a_scan_to_the_bit_and_the_encoding_the_plain_one(seed, reads_every):
    """``totals`` adds up tiers summed once per change (``Windows._derived``): the same values, float sums
    bit for bit and keys in the same order, as a scan of every bucket, with late events, roll-ups, merges and
    times before, inside and after the buckets; ``to_json_bytes`` is ``serde.dumps(to_json())`` throughout."""
    from livesignals import serde

    rng = random.Random(seed)
    w, other = Windows(), Windows()
    t = 1_767_225_600_000
    for i in range(500):
        t += rng.choice([1_000, 60_000, 300_000, 3_600_000, 5 * 3_600_000])
        late = t - rng.choice([0, 0, 0, 120_000, 3_600_000, 3 * DAY_MS, 40 * DAY_MS])
        values = {"events": 1, "spend": round(rng.uniform(0.01, 100), 2) * rng.choice([1, 0.1, 3.3]),
                  "channels": rng.choice("abc"), "errors": rng.choice([0, 1])}  # fmt: skip
        (other if i % 50 == 49 else w).add(late, values)
        if i % 50 == 49:
            w.merge(other)
        if i % reads_every:  # sums read rarely are dropped, not kept up (window_memo.MAX_UNREAD)
            continue
        for now in (t, t + 1, t + 3_600_000, t + 8 * DAY_MS, t - 2 * DAY_MS):
            for window in WINDOWS:
                got, want = w.totals(window, now), _scan_totals(w, window, now)
                assert got == want and all(type(got[m]) is type(v) for m, v in want.items()), (window, now)
        assert w.to_json_bytes() == serde.dumps(w.to_json())
        again = Windows.from_json(serde.loads(w.to_json_bytes()))
        assert again == w and again.to_json_bytes() == w.to_json_bytes()


def test_an_event_or_a_roll_up_sums_again_only_the_tier_it_changed():
    """The claim of ``window_memo``: an event changing a 5-minute bucket does not sum the hourly and daily tiers
    again (most of a long history's buckets); a roll-up of a 5-minute bucket into an hourly one adds its counts
    to the hourly tier's sums in place."""
    w = Windows()
    for i in range(2_000):  # a week at one event per 5 minutes: every tier holds buckets
        w.add(i * 300_000, {"events": 1, "channels": "web"})
    w.totals("30d", w.newest_ms)
    hourly, daily = w._memo["1h"], w._memo["1d"]
    sums, daily_sums = hourly.ints, daily.ints
    w.add(w.newest_ms + 1, {"events": 1})  # the same 5-minute bucket: nothing rolls up
    w.totals("30d", w.newest_ms)
    assert hourly.ints is sums and daily.ints is daily_sums and w._memo["5m"].ints is not None
    w.add(w.newest_ms + 300_000, {"events": 1})  # 5 minutes on: the oldest 5-minute bucket joins an hourly one
    assert (
        sums is not None
        and hourly.ints is sums
        and sums["events"][0] == sum(b.get("events", 0) for b in w.buckets["1h"].values())
    )
    assert w._memo["5m"].ints is None  # the tier the event fell in: summed again when next asked


def test_sums_nobody_reads_are_dropped_after_a_few_roll_ups_not_kept_up():
    from operators.profile360.window_memo import MAX_UNREAD

    w = Windows()
    for i in range(200):
        w.add(i * 300_000, {"events": 1})
    w.totals("24h", w.newest_ms)
    hourly = w._memo["1h"]
    for i in range(MAX_UNREAD):  # each 5 minutes on: a 5-minute bucket rolls into the hourly tier
        w.add(w.newest_ms + 300_000, {"events": 1})
        assert hourly.ints is not None and hourly.unread == i + 1
    w.add(w.newest_ms + 300_000, {"events": 1})
    assert hourly.ints is None  # summed again at the next read
    assert w.totals("24h", w.newest_ms)["events"] == sum(
        b["events"] for t in ("5m", "1h") for b in w.buckets[t].values()
    )
    assert hourly.unread == 0 and hourly.ints is not None


def test_a_windows_memo_survives_pickle_and_equality_ignores_it():
    w = Windows()
    for i in range(300):
        w.add(i * 600_000, {"events": 1, "spend": 1.5})
    w.totals("30d", w.newest_ms), w.to_json_bytes()
    back = pickle.loads(pickle.dumps(w))
    assert back == w == Windows.from_json(w.to_json())
    assert back.totals("7d", w.newest_ms) == w.totals("7d", w.newest_ms) and back.to_json_bytes() == w.to_json_bytes()

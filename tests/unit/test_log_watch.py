"""The running check of a partition's log (flows.log_watch): when it re-reads which record, and its verdicts."""

from __future__ import annotations

import pickle

from confluent_kafka import KafkaError

from flows.log_watch import LogWatch


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_disconnect_re_reads_the_last_record_handed_out_at_once():
    watch = LogWatch(every_s=30, clock=_Clock())
    assert watch.begin({"t": "5|1|1|1"}) is None, "nothing due, no disconnect"
    watch.on_error(KafkaError(KafkaError._TRANSPORT))
    assert watch.begin({"t": "5|1|1|1", "u": "7|1|1|1"}) == {"t": 5, "u": 7}
    assert watch.judge("t", 5, "5|1|1|1") == "same"
    assert watch.judge("u", 7, "7|9|9|9") == "reset", "another record where the applied one was"
    assert watch.checking == {"u": "7|1|1|1"}, "kept for the mark written back"


def test_other_errors_do_not_make_the_log_suspect():
    watch = LogWatch(clock=_Clock())
    watch.on_error(KafkaError(KafkaError._TIMED_OUT))
    assert not watch.suspect


def test_the_periodic_check_re_reads_the_anchor_from_before_the_previous_check():
    """A topic re-created on a live broker gives no disconnect: the anchor is a record handed out before the
    previous check, so records of a new log handed out since cannot vouch for themselves."""
    clock = _Clock()
    watch = LogWatch(every_s=30, clock=clock)
    watch.anchor_at({"t": "3|1|1|1"})  # the claim's checked mark
    clock.now = 31
    assert watch.begin({"t": "40|1|1|1"}) == {"t": 3}
    assert watch.judge("t", 3, "3|1|1|1") == "same"
    clock.now = 50
    assert watch.begin({"t": "90|1|1|1"}) is None, "not due yet"
    clock.now = 62
    assert watch.begin({"t": "90|1|1|1"}) == {"t": 40}, "the last record of the previous check is the new anchor"


def test_a_record_missing_is_left_to_the_reader_to_judge_against_the_logs_start():
    watch = LogWatch(clock=_Clock())
    watch.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    watch.begin({"t": "5|1|1|1"})
    assert watch.judge("t", 4, "4|1|1|1") == "other", "before the record checked"
    assert watch.judge("t", 9, "9|1|1|1") == "missing", "the reader asks Kafka whether retention removed it"
    assert watch.checking == {"t": "5|1|1|1"}
    watch.drop("t")
    assert watch.checking == {}


def test_pickle_round_trip_keeps_the_check_in_progress():
    watch = LogWatch(every_s=30)
    watch.on_error(KafkaError(KafkaError._TRANSPORT))
    watch.begin({"t": "5|1|1|1"})
    copy = pickle.loads(pickle.dumps(watch))
    assert copy.checking == watch.checking and copy.every_s == 30


def test_a_check_is_due_only_after_a_disconnect_or_the_period():
    """The reader computes the fingerprints of its last records only when a check is due (not on every poll)."""
    clock = _Clock()
    watch = LogWatch(every_s=30, clock=clock)
    assert not watch.due()
    clock.now = 31
    assert watch.due()
    watch.begin({"t": "5|1|1|1"})  # the first period sets the anchor
    assert not watch.due()
    watch.on_error(KafkaError(KafkaError._TRANSPORT))
    assert watch.due()
    watch.begin({"t": "6|1|1|1"})
    assert not watch.due(), "a check in progress"


def test_a_record_at_or_above_the_next_offset_to_hand_out_is_not_re_read_after_a_rewind():
    """Break-test 10f, K1: after a rewind (a replay from 0, Redis emptied) the anchor names a record near the log
    end; re-reading it would move the reader there and skip every record between the replay position and it."""
    clock = _Clock()
    watch = LogWatch(every_s=30, clock=clock)
    watch.anchor_at({"t": "700|1|1|1", "u": "40|1|1|1"})
    clock.now = 31
    assert watch.begin({"t": "120|1|1|1"}, below={"t": 121, "u": None}) is None, "700 >= 121; u: nothing handed out"
    clock.now = 62
    assert watch.begin({"t": "300|1|1|1"}, below={"t": 301, "u": 41}) == {"t": 120, "u": 40}, "the replay passed both"


def test_with_no_log_mark_the_first_record_handed_out_is_the_first_anchor():
    """A deployment's first start has no log mark. The first check used to take the last records as the anchor
    and re-read nothing: a topic re-created on a live broker meanwhile then vouched for itself (Apache Kafka, engine
    paused: 1,600 of 3,200 new events skipped). The first record handed out is re-read instead."""
    clock = _Clock()
    watch = LogWatch(every_s=30, clock=clock)
    assert not watch.anchored("t")
    watch.anchor_first({"t": "0|1|1|1"})
    watch.anchor_first({"t": "7|1|1|1"})  # only while there is none
    assert watch.anchored("t")
    clock.now = 31
    assert watch.begin({"t": "90|1|1|1"}, below={"t": 91}) == {"t": 0}

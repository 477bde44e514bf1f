"""Contact-centre KPIs and the voice of the customer, against hand-computed values."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from flows.engine_sink import EngineSink, default_engine
from state.connection import connect
from state.keys import Keys
from state.reader import read_kpis, read_voc
from tests.flows.test_live_flow import MemoryPublisher
from tests.helpers import T0, event, raw

MIN = 60_000


def run(settings, docs, sentiment=None):
    flow = Dataflow("kpi")
    messages = raw(docs, settings.input_topics[0])
    stream = op.input("in", flow, TestingSource(messages, batch_size=4))

    def factory(s):
        engine = default_engine(s, MemoryPublisher())
        engine.sentiment = sentiment
        return engine

    op.output("engine", stream, EngineSink(settings, factory))
    run_main(flow)


SCENARIO = [
    event("call", "c1", T0, event_id="call1", outcome="resolved", handle_time_s=300),
    event("chat", "c2", T0 + 5 * MIN, event_id="chat1", outcome="resolved", handle_time_s=120),
    event("email", "c3", T0 + 6 * MIN, event_id="mail1", outcome="unresolved"),
    event("web_event", "c4", T0 + 7 * MIN, action="help_article"),
    event("app_event", "c5", T0 + 8 * MIN, action="order_tracking"),
    event("call", "c1", T0 + 10 * MIN, event_id="call2", outcome="unresolved", handle_time_s=600),
    event("survey", "c1", T0 + 11 * MIN, kind="csat", score=5, rates_event_id="call1"),
    event("survey", "c2", T0 + 12 * MIN, kind="csat", score=2, rates_event_id="chat1"),
    event("survey", "c3", T0 + 13 * MIN, kind="nps", score=10, rates_event_id="mail1"),
    event("survey", "c4", T0 + 14 * MIN, channel="web", kind="nps", score=3),
    event("survey", "c5", T0 + 15 * MIN, channel="sms", kind="ces", score=2),
    event("survey", "c6", T0 + 16 * MIN, channel="sms", kind="ces", score=6),
]


def test_kpis_match_hand_computed_values(settings):
    run(settings, SCENARIO)
    k = read_kpis(connect(settings), Keys(settings.key_prefix), now_ms=T0 + 50 * MIN)
    overall = k["1h"]["all"]
    assert overall == {
        "contacts": 4,
        "fcr_pct": 66.7,  # call1 and chat1 resolved of 3 first contacts (call2 is a repeat)
        "repeat_contact_pct": 25.0,  # call2
        "aht_s": 340.0,  # (300 + 120 + 600) / 3
        "csat_pct": 50.0,  # one 5 of two answers
        "nps": 0.0,  # one promoter, one detractor
        "ces": 4.0,  # (2 + 6) / 2
        "deflection_pct": 33.3,  # 2 self-service / (2 + 4 contacts)
    }
    phone = k["1h"]["phone"]
    assert (phone["contacts"], phone["fcr_pct"], phone["repeat_contact_pct"], phone["aht_s"], phone["csat_pct"]) == (
        2, 100.0, 50.0, 450.0, 100.0,
    )  # fmt: skip
    assert k["1h"]["chat"]["csat_pct"] == 0.0 and k["1h"]["email"]["nps"] == 100.0
    assert k["24h"]["all"] == overall
    later = read_kpis(connect(settings), Keys(settings.key_prefix), now_ms=T0 + 3 * 60 * MIN)
    assert later["1h"]["all"]["contacts"] == 0 and later["24h"]["all"]["contacts"] == 4


def test_rising_complaint_terms_and_topics(settings):
    def lexicon(text, _lang):
        return -0.8 if "refund" in text or "broken" in text else 0.5

    day = [event("chat", f"d{i}", T0 + i * 60 * MIN, text="broken screen again", topic="quality") for i in range(20)]
    hour = [
        event("email", f"h{i}", T0 + 23 * 60 * MIN + i * MIN, text="where is my refund", topic="billing")
        for i in range(6)
    ]
    happy = [event("chat", "ok", T0 + 23 * 60 * MIN + 30 * MIN, text="thanks, all good")]
    run(settings, day + hour + happy, sentiment=lexicon)
    v = read_voc(connect(settings), Keys(settings.key_prefix), now_ms=T0 + 23 * 60 * MIN + 40 * MIN)
    assert v["terms"][0]["term"] == "refund" and v["terms"][0]["hour"] == 6
    assert v["topics"][0]["topic"] == "billing"
    assert (v["complaints_1h"], v["complaints_24h"]) == (6, 26)  # the happy chat is no complaint

"""Contact policy and consent: nothing goes out that should not, and every hold-back has a reason."""

from __future__ import annotations

from operators.decisions.policy import ContactPolicy
from operators.profile360.profile import CustomerState
from operators.rules.signals import Trigger

DAY = 86_400_000
NOON = 1_767_268_800_000  # 2026-01-01T12:00:00Z


def trigger(action="retention_offer", channel="email", n=0):
    purpose = "service" if action == "proactive_notification" else "marketing"
    return Trigger(f"t{n}", "customer_id:c1", action, channel, ("why",), NOON, NOON + DAY, purpose=purpose)


def test_consent_is_per_purpose():
    policy, s = ContactPolicy(), CustomerState("customer_id:c1", consent={"marketing": False})
    assert policy.check(s, trigger("retention_offer"), NOON) == "no_marketing_consent"
    assert policy.check(s, trigger("proactive_notification"), NOON) is None
    s.consent["service"] = False
    assert policy.check(s, trigger("proactive_notification"), NOON + 1) == "no_service_consent"


def test_daily_weekly_and_channel_caps():
    policy = ContactPolicy(daily_cap=2, weekly_cap=3, channel_daily_caps={"sms": 1})
    s = CustomerState("customer_id:c1")
    assert policy.check(s, trigger(channel="sms"), NOON) is None
    assert policy.check(s, trigger(channel="sms"), NOON + 1) == "channel_daily_cap"
    assert policy.check(s, trigger(channel="email"), NOON + 2) is None
    assert policy.check(s, trigger(channel="email"), NOON + 3) == "daily_cap"
    assert policy.check(s, trigger(channel="email"), NOON + DAY) is None
    assert policy.check(s, trigger(channel="email"), NOON + 2 * DAY) == "weekly_cap"
    assert policy.check(s, trigger(channel="email"), NOON + 8 * DAY) is None


def test_quiet_hours_follow_the_customers_time_zone():
    policy = ContactPolicy(quiet_start_hour=21, quiet_end_hour=8)
    utc = CustomerState("customer_id:c1")
    tehran = CustomerState("customer_id:c2", identity={"attributes": {"timezone": "Asia/Tehran"}})
    late_utc = NOON + 10 * 3_600_000  # 22:00 UTC = 01:30 in Tehran
    assert policy.check(utc, trigger(), NOON) is None
    assert policy.check(utc, trigger(), late_utc) == "quiet_hours"
    assert policy.check(tehran, trigger(), NOON - 4 * 3_600_000) is None  # 08:00 UTC = 11:30 Tehran
    assert policy.check(tehran, trigger(), NOON + 6 * 3_600_000) == "quiet_hours"  # 18:00 UTC = 21:30 Tehran
    odd = CustomerState("customer_id:c3", identity={"attributes": {"timezone": "Mars/Olympus"}})
    assert policy.check(odd, trigger(), NOON) is None  # unknown zones fall back to UTC


def test_offers_stop_after_a_streak_of_ignored_ones():
    policy = ContactPolicy(max_ignored=3)
    s = CustomerState("customer_id:c1", history={"offer_streak": {"ignored": 3}})
    assert policy.check(s, trigger("retention_offer"), NOON) == "ignored_offers"
    assert policy.check(s, trigger("proactive_notification"), NOON) is None

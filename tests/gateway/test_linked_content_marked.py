"""What a customer's 360 merges from a linked identifier's profile is marked ``via: <kind>`` (break-test 12f,
F7: an outsider's chat carrying the customer's device id showed on the card, in the timeline and as the
"context carried", as the customer's own words -- a lever for account takeover on the phone). Identity
stitching stays (a claimed device's later events are usually the customer's); the card says where it came
from. Real engine, real Redis; the page in headless Chromium, as ``test_browser.py``."""

from __future__ import annotations

from tests.gateway.conftest import LiveServer, NullProducer, bearer, now_ms, token
from tests.gateway.test_browser import browser  # noqa: F401 - the fixture
from tests.helpers import event

A8 = bearer(token("a8", queues=("billing",)))


def _inject(world) -> None:
    """v1 logged in on device dv1, and calls in, served by a8; an outsider chats carrying v1's device id."""
    t = now_ms() - 60_000
    world.apply(
        {**event("web_event", "v1", t, event_id="v1-login", action="login"),
         "customer": {"customer_id": "v1", "device_id": "dv1"}},
        event("call", "v1", t + 1000, event_id="v1-call", agent_id="a8", queue="billing", topic="billing"),
        {**event("chat", "x", t + 2000, event_id="evil", queue="billing",
                 text="Please change my delivery address to 1 Attacker Road"),
         "customer": {"device_id": "dv1", "cookie_id": "ck-evil1"}},
    )  # fmt: skip


def test_the_linked_devices_chat_is_marked_in_the_timeline_and_the_context_carried(world, client):
    _inject(world)
    r = client.get("/v1/customers/v1?timeline=20&channel=phone", headers=A8)
    assert r.status_code == 200 and r.json()["access"]["why"] == "serving on phone", r.text
    doc = r.json()
    by_id = {e["id"]: e for e in doc["timeline"]}
    assert by_id["evil"]["via"] == "device_id"  # the outsider's words, marked
    assert "via" not in by_id["v1-call"] and "via" not in by_id["v1-login"]  # the customer's own, not
    carried = doc["present"]["context_carried"]
    assert carried["event_id"] == "evil" and carried["via"] == "device_id", carried
    assert doc["history"]["touch"]["chat"]["via"] == "device_id"
    assert "via" not in doc["history"]["touch"]["phone"]
    analyst = client.get(
        f"/v1/customers/{world.pseudonym('v1')}?timeline=20&channel=phone", headers=bearer(token("x", role="analyst"))
    )
    assert analyst.json()["present"]["context_carried"]["via"] == "device_id"  # shown to analysts too


def test_the_card_shows_the_mark(world, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    _inject(world)
    with LiveServer(world.settings, world.client, NullProducer()) as server:
        browser.get(f"{server.url}/agent?customer=v1#token={token('a8', queues=('billing',))}")
        WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.ID, "timeline"), "Attacker Road"))
        rows = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#timeline li")]
        who = browser.find_element(By.ID, "who-ids").text
    marked = [row for row in rows if "Attacker Road" in row]
    assert marked and all("via device, not identified" in row for row in marked), rows
    assert "ck-evil1 (via linked identifier, not identified)" in who, who  # the outsider's cookie (12h, H8)
    assert all("via" not in row for row in rows if "Attacker Road" not in row), rows


def test_why_now_made_from_a_linked_devices_events_is_marked(world, client):
    """Break-test 12g, G1: F7 marked the timeline and the context carried, but the why-now reason made from the
    outsider's escalated chat on the customer's device was the card's top line, unmarked."""
    t = now_ms() - 60_000
    world.apply(
        {**event("web_event", "v2", t, event_id="v2-login", action="login"),
         "customer": {"customer_id": "v2", "device_id": "dv2"}},
        event("call", "v2", t + 1000, event_id="v2-call", agent_id="a8", queue="billing", topic="billing"),
        {**event("chat", "x", t + 2000, event_id="evil2", queue="billing", topic="change-of-address",
                 outcome="escalated", text="move my refunds"), "customer": {"device_id": "dv2"}},
    )  # fmt: skip
    doc = client.get("/v1/customers/v2?timeline=20&channel=phone", headers=A8).json()
    reasons = doc["present"]["reasons"]
    made = [r for r in reasons if "change-of-address" in r.get("detail", "")]
    assert made and all(r.get("via") == "device_id" for r in made), reasons
    assert all("via" not in r for r in reasons if r not in made and "change-of-address" not in str(r)), reasons


def test_a_linked_devices_resolved_chat_does_not_remove_the_customers_own_reason(world, client):
    """Break-test 12h, H4: the latest touch per channel wins in the merge, so one "resolved" chat an outsider
    sent carrying the customer's device id hid the customer's own escalated chat: why_now null, no reason. The
    customer's own reasons now come first, from its own state; linked data only adds reasons, marked."""
    t = now_ms() - 60_000
    world.apply(
        {**event("web_event", "vh4", t, event_id="vh4-login", action="login"),
         "customer": {"customer_id": "vh4", "device_id": "dvh4"}},
        event("chat", "vh4", t + 1000, event_id="vh4-chat", queue="billing", topic="fraud-on-my-account",
              outcome="escalated", text="someone took money"),
        event("call", "vh4", t + 2000, event_id="vh4-call", agent_id="a8", queue="billing", topic="billing"),
        {**event("chat", "x", t + 3000, event_id="evil4", queue="billing", topic="thanks", outcome="resolved",
                 text="all sorted"), "customer": {"device_id": "dvh4"}},
    )  # fmt: skip
    doc = client.get("/v1/customers/vh4?timeline=20&channel=phone", headers=A8).json()
    why, reasons = doc["present"]["why_now"], doc["present"]["reasons"]
    assert why is not None and "fraud-on-my-account" in why["detail"] and "via" not in why, reasons
    assert all("via" in r for r in reasons if "fraud-on-my-account" not in r["detail"]), reasons


def test_identifiers_and_a_cart_only_a_linked_profile_brought_are_marked(world, client):
    """Break-test 12h, H8: the outsider's cookie joined the card's identifier line, and a cart from the linked
    device replaced the customer's, both unmarked. They are now listed under ``identity.ids_via`` (masked for
    analysts like ``ids``) and marked ``via`` on the cart."""
    _inject(world)
    t = now_ms() - 30_000
    world.apply({**event("web_event", "x", t, event_id="evil-cart", action="add_to_cart", product_id="p-evil"),
                 "customer": {"device_id": "dv1"}})  # fmt: skip
    doc = client.get("/v1/customers/v1?channel=phone", headers=A8).json()
    assert doc["identity"]["ids_via"] == {"cookie_id": ["ck-evil1"]}, doc["identity"]
    assert "ck-evil1" in doc["identity"]["ids"]["cookie_id"]
    assert "device_id" not in doc["identity"]["ids_via"]  # the customer's own login named the device
    cart = doc["activity"]["cart"]
    assert cart["via"] == "device_id" and "p-evil" in str(cart), cart
    analyst = client.get(f"/v1/customers/{world.pseudonym('v1')}", headers=bearer(token("x", role="analyst"))).json()
    assert "ck-evil1" not in str(analyst) and analyst["identity"]["ids_via"] == {"cookie_id": ["***"]}

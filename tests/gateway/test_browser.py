"""The agent card in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium): open a
customer, see the card, receive a flag pushed live without reloading, click accept and find the feedback
event in Kafka. Skipped when Chromium is absent, unless LIVESIGNALS_TEST_BROWSER=required (CI)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from livesignals import serde
from tests.gateway.conftest import LiveServer, now_ms, token, world_for
from tests.helpers import consume_all, event

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "agent-card.png"


@pytest.fixture
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("LIVESIGNALS_TEST_BROWSER") == "required":
            pytest.fail("LIVESIGNALS_TEST_BROWSER=required but Debian's chromium/chromium-driver are not installed")
        pytest.skip("no Chromium (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_agent_card_live(kafka_settings, redis_client, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    world = world_for(kafka_settings, redis_client)
    wait = WebDriverWait(browser, 30)
    with LiveServer(world.settings, world.client, None) as server:
        browser.get(f"{server.url}/agent?customer=c1#token={token('a1', queues=('billing',))}")
        wait.until(ec.text_to_be_present_in_element((By.ID, "who-name"), "Ann Example"))
        assert "token" not in browser.current_url  # the token left the address bar
        context = browser.find_element(By.ID, "context").text
        assert context.startswith("Context carried: chat") and "{" not in context, context  # words, not JSON (12g G4)
        assert "chat on chat" not in context, context  # the channel once (break-test 12h, H8)
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))
        browser.execute_script("window.notReloaded = true")
        t = now_ms() - 5_000
        world.apply(
            *[
                event(
                    "chat",
                    "c1",
                    t + i,
                    event_id=f"b{i}",
                    agent_id="a1",
                    queue="billing",
                    topic="billing",
                    text="it is still broken, third time I write",
                )
                for i in range(3)
            ]
        )
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#flags li[data-flag='repeat_contact']")))
        assert browser.execute_script("return window.notReloaded") is True
        # a mood change, as the engine's store writes it, shows without a reload or a re-read
        mood = {"last": -0.9, "avg": -0.6, "trend": -0.3, "n": 9, "t": now_ms()}
        doc = {"customer": "customer_id:c1", "kind": "mood", "mood": mood}
        world.client.xadd(world.keys.updates_stream, {"customer": "customer_id:c1", "kind": "mood",
                                                      "doc": serde.dumps(doc)})  # fmt: skip
        wait.until(ec.text_to_be_present_in_element((By.ID, "mood"), "upset (trend -0.3)"))
        accept = wait.until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, "#actions li[data-action] button[data-verdict='accept']"))
        )
        action = accept.find_element(By.XPATH, "..").get_attribute("data-action")
        accept.click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#actions .done")))
        time.sleep(0.3)
        if os.environ.get("LIVESIGNALS_UPDATE_SCREENSHOT"):
            SCREENSHOT.parent.mkdir(exist_ok=True)
            browser.save_screenshot(str(SCREENSHOT))
    records = consume_all(world.settings.kafka_bootstrap, world.settings.input_topics[0], 1)
    docs = [serde.loads(m.value()) for m in records]
    assert [(d["type"], d["payload"]["action"], d["payload"]["response"], d["payload"]["agent_id"]) for d in docs] == [
        ("offer_response", action, "accepted", "a1")
    ]

"""The agent card stops following a customer it is refused (break-test of issue 12, finding 13): after the
contact ends the stream says bye, the one reconnect is refused (403) and the page stops there instead of
retrying for ever, each retry an audited denial. Headless Chromium, as ``test_browser.py``."""

from __future__ import annotations

import time

from gateway.audit import AuditLog
from tests.gateway.conftest import LiveServer, NullProducer, now_ms, token
from tests.gateway.test_browser import browser  # noqa: F401 - the fixture
from tests.helpers import event


def test_the_page_stops_retrying_when_refused(world, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    settings = world.settings.replace(gateway_push_recheck_s=0.3)
    log = AuditLog(world.client, settings.key_prefix, 1000)
    wait = WebDriverWait(browser, 30)
    with LiveServer(settings, world.client, NullProducer()) as server:
        browser.get(f"{server.url}/agent?customer=c1#token={token('a1', queues=('billing',))}")
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))
        world.apply(event("chat", "c1", now_ms() - 1000, event_id="end", agent_id="a1", queue="billing",
                          outcome="resolved"))  # fmt: skip
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "stopped"))
        assert "no longer yours" in browser.find_element(By.ID, "message").text
        time.sleep(4)  # the old back-off would have retried 3 times by now
        denied = [e for e in log.entries(50) if e["action"] == "subscribe" and e["allowed"] == "0"]
        assert len(denied) == 2  # the re-check that said bye, and the one reconnect refused

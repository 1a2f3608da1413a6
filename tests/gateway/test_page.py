"""The gateway's chat page in a real headless Chromium (Debian's `chromium`, driven by Playwright's Python
package; never `playwright install`): tokens arrive one by one, Stop cancels the job, the record shows it."""

import os
import shutil
from pathlib import Path

import pytest

from tests.gateway.conftest import API_KEY

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and shutil.which("apt-get") and os.geteuid() == 0:
    # `make install` installs it here: its absence is a broken install, not a reason to skip
    pytest.fail(f"no Chromium at {CHROMIUM}, though `make install` installs it on this machine", pytrace=False)
if not CHROMIUM.exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `make install` installs Debian's chromium only where apt-get exists and "
        "it runs as root; elsewhere install a Chromium there by hand",
        allow_module_level=True,
    )
playwright = pytest.importorskip("playwright.async_api", reason="Playwright's Python package is in the dev extra")


@pytest.fixture
def artifacts_dir(tmp_path) -> Path:
    """Where the screenshot goes: $INFERQ_TEST_ARTIFACTS_DIR when CI collects artifacts, else the test's tmp dir."""
    folder = Path(os.environ.get("INFERQ_TEST_ARTIFACTS_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_tokens_arrive_one_by_one_and_stop_keeps_the_partial_answer(gateway, release, artifacts_dir):
    wait, let_go = release()
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 640})
            page.set_default_timeout(180_000)  # Playwright's 30 s is a bet on a quiet machine; this only bounds a hang
            await page.goto(gateway.url)
            await page.fill("#api-key", API_KEY)
            await page.dispatch_event("#api-key", "change")  # the model list needs the key
            await page.wait_for_selector("#model option[value=echo]", state="attached")
            await page.select_option("#model", "echo")
            await page.fill("#system", "You are a parrot.")

            await page.fill("#question", f"alpha {wait} beta gamma [hold] never")
            await page.click("#send")
            answer = page.locator(".turn.assistant").last
            await _expect_text(answer, "alpha")  # one token, and the job waits for the test
            assert await answer.get_attribute("data-deltas") == "1"
            let_go()
            await _expect_text(answer, f"alpha {wait} beta gamma")  # then held until stopped
            assert await answer.get_attribute("data-deltas") == "4"

            await page.click("#stop")
            await page.wait_for_selector("#record[data-status=cancelled]")
            assert await answer.text_content() == f"alpha {wait} beta gamma"
            record_text = await page.text_content("#record")
            # a tenant sees which engine answered; which worker and host ran it, only an admin does
            assert "finish    abort" in record_text and "(echo, attempt 1)" in record_text
            assert await page.text_content("#status") == "stopped"
            screenshot = artifacts_dir / "gateway-page.png"
            await page.screenshot(path=str(screenshot), full_page=True)
            print(f"screenshot: {screenshot}")

            await page.click("#clear")
            assert await page.locator(".turn").count() == 0
        finally:
            await browser.close()
    assert screenshot.stat().st_size > 0


async def _expect_text(locator, text):
    await playwright.expect(locator).to_have_text(text, timeout=180_000)  # a bound for failure only

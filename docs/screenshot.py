"""Makes docs/gateway-page.png: the gateway's chat page with a real SmolLM2 answer, as a user would see it.

`.venv/bin/python docs/screenshot.py` from the repository root (needs /usr/bin/chromium, as the page test does).
It starts an embedded Redis, one SmolLM2 worker (the HF engine) and a gateway, asks one question on the page
and waits for the whole answer, then stops everything it started.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.embedded_redis import EmbeddedRedis  # noqa: E402
from harness.gateway_process import GatewayProcess  # noqa: E402
from harness.worker_process import WorkerProcess  # noqa: E402

QUESTION = "What is the capital of France, and what is it famous for?"
CHROMIUM = "/usr/bin/chromium"


async def shoot(gateway_url: str, out: Path) -> None:
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 640})
            page.set_default_timeout(300_000)
            await page.goto(gateway_url)
            await page.wait_for_selector("#model option[value=smollm2]", state="attached")
            await page.select_option("#model", "smollm2")
            await page.fill("#system", "You are a helpful assistant.")
            await page.fill("#temperature", "0")  # greedy: the same answer every time this is run
            await page.fill("#question", QUESTION)
            await page.click("#send")
            # the job panel fills in when the answer's record arrives: the answer is complete
            await page.wait_for_selector("#record[data-status=succeeded]", state="attached")
            await page.screenshot(path=str(out), full_page=True)
        finally:
            await browser.close()


def main() -> None:
    out = ROOT / "docs" / "gateway-page.png"
    logs = Path(tempfile.mkdtemp(prefix="inferq-screenshot-"))
    with EmbeddedRedis() as redis:
        worker = WorkerProcess(redis.url, "smollm2", "smollm2", logs, concurrency=4).start()
        gateway = GatewayProcess(redis.url, logs / "gateway.log").start()
        try:
            asyncio.run(shoot(gateway.url, out))
        finally:
            gateway.stop()
            worker.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

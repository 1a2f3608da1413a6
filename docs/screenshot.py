"""Makes the README's pictures of the product at work, as a user would see it:
- docs/gateway-page.png: the gateway's chat page with a real SmolLM2 answer;
- docs/flower-batches.png: Flower's Batches tab while a Batch API batch of SmolLM2 chats runs.

`.venv/bin/python docs/screenshot.py` from the repository root (needs /usr/bin/chromium, as the page test does).
It starts an embedded Redis, one SmolLM2 worker (the HF engine), a gateway and Flower, asks one question on
the page and waits for the whole answer, sends a batch through the `openai` package and waits for some of
its lines, then stops everything it started.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import tempfile
from pathlib import Path

import openai
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.embedded_redis import EmbeddedRedis  # noqa: E402
from harness.flower_process import FlowerProcess  # noqa: E402
from harness.gateway_process import GatewayProcess  # noqa: E402
from harness.worker_process import WorkerProcess  # noqa: E402

QUESTION = "What is the capital of France, and what is it famous for?"
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BATCH_TOPICS = ["rivers", "bridges", "owls", "tea", "comets", "maps", "bees", "glass", "tides", "violins"]
LINES_SHOWN_DONE = 12  # the picture is taken once this many lines are answered: a batch well under way


async def shoot(gateway_url: str, out: Path) -> None:
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
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


async def shoot_batches(gateway_url: str, flower_url: str, out: Path) -> None:
    """A batch of 80 short SmolLM2 chats through the Batch API, pictured on Flower's Batches tab mid-way."""
    oai = openai.AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key="unused")
    lines = [
        {"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "smollm2", "max_tokens": 48, "temperature": 0,
                  "messages": [{"role": "user", "content": f"Write one sentence about {topic} (#{i})."}]}}
        for i, topic in enumerate(BATCH_TOPICS * 8)
    ]  # fmt: skip
    data = io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())
    uploaded = await oai.files.create(file=("questions.jsonl", data), purpose="batch")
    batch = await oai.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    while (await oai.batches.retrieve(batch.id)).request_counts.completed < LINES_SHOWN_DONE:
        await asyncio.sleep(0.5)
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 400})
            await page.goto(f"{flower_url}/batches")
            await page.wait_for_selector(f"tr[id='{batch.id}']")
            await page.screenshot(path=str(out), full_page=True)
        finally:
            await browser.close()
    await oai.batches.cancel(batch.id)


def main() -> None:
    page_out, batches_out = ROOT / "docs" / "gateway-page.png", ROOT / "docs" / "flower-batches.png"
    logs = Path(tempfile.mkdtemp(prefix="inferq-screenshot-"))
    with EmbeddedRedis() as redis:
        worker = WorkerProcess(redis.url, "smollm2", "smollm2", logs, concurrency=4).start()
        gateway = GatewayProcess(redis.url, logs / "gateway.log").start()
        flower = FlowerProcess(redis.url, logs / "flower.log").start()
        try:
            asyncio.run(shoot(gateway.url, page_out))
            asyncio.run(shoot_batches(gateway.url, flower.url, batches_out))
        finally:
            flower.stop()
            gateway.stop()
            worker.stop()
    print(f"wrote {page_out} and {batches_out}")


if __name__ == "__main__":
    main()

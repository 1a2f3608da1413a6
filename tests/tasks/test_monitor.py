"""Flower, started as a user would, sees the fleet."""

import json
import os
import subprocess
import sys
import time
import urllib.request

from harness.embedded_redis import free_port
from worker.orphan_guard import die_with_parent


def test_flower_lists_the_live_workers(redis_url, tiny_worker, tiny_scorer_worker):
    port = free_port()
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks.monitor", "flower", f"--port={port}", "--address=127.0.0.1"],
        env={**os.environ, "INFERQ_REDIS_URL": redis_url, "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + 180  # a bound for failure only
        workers: dict = {}
        while time.monotonic() < deadline and not {tiny_worker.hostname, tiny_scorer_worker.hostname} <= set(workers):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/workers?refresh=1", timeout=10) as reply:
                    workers = json.load(reply)
            except OSError:
                time.sleep(0.5)
        assert {tiny_worker.hostname, tiny_scorer_worker.hostname} <= set(workers)
        queues = {queue["name"] for queue in workers[tiny_worker.hostname]["active_queues"]}
        assert queues == {"inferq.model.tiny"}
    finally:
        flower.terminate()
        flower.wait(timeout=30)

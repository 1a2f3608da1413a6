"""The real SmolLM2 through the whole queue, and `inferq demo` (the README's first command) itself."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_smollm2_answers_paris_through_the_queue(smollm2_worker, client):
    [response] = client.chat(QUESTION, "smollm2", temperature=0, timeout=120)
    assert response.response_text == "The capital of France is Paris."
    assert response.finish_reason == "stop"
    assert "".join(client.stream_chat(QUESTION, "smollm2", temperature=0)) == response.response_text


def _marked(mark: str) -> set[int]:
    """Live processes whose environment carries `mark`: the demo and everything it started inherit it, and no
    other process on the machine (another test session included) has it."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark.encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def test_the_demo_runs_on_an_embedded_redis_and_leaves_nothing_behind():
    mark = f"INFERQ_DEMO_TEST={uuid.uuid4().hex}"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo"],
        # nothing answers at that Redis URL: the demo starts its own
        env={**os.environ, "INFERQ_REDIS_URL": "redis://127.0.0.1:9/0", "COLUMNS": "200", **dict([mark.split("=")])},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "started an embedded redis-server" in output
    assert "Assistant: The capital of France is Paris." in output
    assert '"scores"' in output and '"status": "succeeded"' in output
    # its redis-server, its worker and the worker's orphan guard (which notices within half a second) end too
    give_up_at = time.monotonic() + 60  # only turns a leak into a failure
    while _marked(mark) and time.monotonic() < give_up_at:
        time.sleep(0.1)
    assert _marked(mark) == set()

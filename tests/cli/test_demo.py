"""The real SmolLM2 through the whole queue, and `inferq demo` (the README's first command) itself."""

import os
import subprocess
import sys
from pathlib import Path

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_smollm2_answers_paris_through_the_queue(smollm2_worker, client):
    [response] = client.chat(QUESTION, "smollm2", temperature=0, timeout=120)
    assert response.response_text == "The capital of France is Paris."
    assert response.finish_reason == "stop"
    assert "".join(client.stream_chat(QUESTION, "smollm2", temperature=0)) == response.response_text


def _processes(*needles: str) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and all(needle in cmdline for needle in needles):
            found.add(int(entry.name))
    return found


def test_the_demo_runs_on_an_embedded_redis_and_leaves_nothing_behind():
    servers_before = _processes("redis-server", "127.0.0.1")
    workers_before = _processes("cli.main", "worker", "--model")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo"],
        env={**os.environ, "INFERQ_REDIS_URL": "redis://127.0.0.1:9/0", "COLUMNS": "200"},  # nothing answers there
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "started an embedded redis-server" in output
    assert "Assistant: The capital of France is Paris." in output
    assert '"scores"' in output and '"status": "succeeded"' in output
    assert _processes("redis-server", "127.0.0.1") == servers_before
    assert _processes("cli.main", "worker", "--model") == workers_before

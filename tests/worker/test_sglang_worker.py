"""`inferq worker --engine sglang` as a real process, on the SGLang stand-in (tests/stand_ins; SGLang
itself needs CUDA): the engine lives on the worker's loop, serves the queue, and stops cleanly."""

import signal
import time
from pathlib import Path

import pytest

from worker.orphan_guard import descendants

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker

STAND_INS = Path(__file__).resolve().parent.parent / "stand_ins"
CANNED = "The capital of France is Paris. It is a lovely city with many museums, parks and cafes."


def test_an_sglang_worker_serves_the_queue_and_stops_only_its_own_processes(start_worker, tiny_llama_dir, client):
    worker = start_worker(tiny_llama_dir, "tiny-sglang", engine="sglang", env={"PYTHONPATH": str(STAND_INS)})
    spawned = descendants(worker.pid)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    assert client.chat(question, "tiny-sglang")[0].response_text == CANNED
    assert "".join(client.stream_chat(question, "tiny-sglang")) == CANNED
    assert len(client.chat(question, "tiny-sglang", n=2)) == 2
    assert worker.stop(signal.SIGTERM) == 0
    deadline = time.monotonic() + 120  # a bound for failure only
    while any(Path(f"/proc/{pid}").exists() for pid in spawned) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in spawned)

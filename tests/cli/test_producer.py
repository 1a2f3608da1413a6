"""The `inferq` producer commands, run as processes against a real worker."""

import json
import os
import subprocess
import sys

import pytest


def _inferq(redis_url, *args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env={**os.environ, "INFERQ_REDIS_URL": redis_url, "INFERQ_NO_WORKER_GRACE_S": "1"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chat_streams_keeps_history_clears_and_exits(redis_url, tiny_worker):
    result = _inferq(
        redis_url, "chat", "--model", "tiny", "--temperature", "0", "--max-new-tokens", "5",
        stdin="hello\nand again\nclear\nexit\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Assistant: ") == 2
    assert "History has been removed." in result.stdout


def test_chat_reports_an_error_and_goes_on(redis_url, tiny_worker):
    result = _inferq(redis_url, "chat", "--model", "tiny", "--top-p", "3", stdin="hi\nexit\n")
    assert result.returncode == 0
    assert "[InvalidRequest] top_p" in result.stdout


def test_submit_streams_then_prints_the_record(redis_url, tiny_worker):
    result = _inferq(
        redis_url, "submit", "--model", "tiny", "Hello there", "--max-new-tokens", "6", "--temperature", "0"
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout[result.stdout.index("{") :])
    assert record["status"] == "succeeded" and record["responses"][0]["response_length"] == 6
    assert result.stdout.startswith(record["responses"][0]["response_text"])


def test_submit_no_wait_prints_the_job_id(redis_url, tiny_worker):
    result = _inferq(redis_url, "submit", "--model", "tiny", "Hi", "--no-wait")
    assert result.returncode == 0 and len(result.stdout.strip()) == 32


def test_a_failing_job_exits_non_zero_with_its_error(redis_url):
    result = _inferq(redis_url, "submit", "--model", "nobody", "Hi")  # no live worker for a second: NoSuchModel
    assert result.returncode == 1
    assert "NoSuchModel" in result.stderr and '"status": "expired"' in result.stdout


def test_score_prints_one_score_per_text(redis_url, tiny_scorer_worker):
    result = _inferq(redis_url, "score", "--model", "tiny-rm", "first text", "second text", "first text")
    assert result.returncode == 0, result.stderr
    scored = json.loads(result.stdout)  # in order, a text given twice twice (a dict by text printed two entries)
    assert [entry["text"] for entry in scored] == ["first text", "second text", "first text"]
    assert all(isinstance(entry["score"], float) for entry in scored)
    assert scored[0]["score"] == pytest.approx(scored[2]["score"], abs=1e-4)  # batched beside another: float noise


def test_submit_stops_waiting_at_its_timeout_even_while_the_job_is_queued(redis_url):
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "submit", "--model", "queued-for-ever", "--timeout", "1", "hello"],
        env={**os.environ, "INFERQ_REDIS_URL": redis_url, "INFERQ_NO_WORKER_GRACE_S": "3600"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "JobTimeout" in result.stderr


def test_an_unreachable_redis_is_one_line_naming_it(tmp_path):
    result = _inferq("redis://127.0.0.1:1/0", "status")  # nothing listens on port 1
    assert result.returncode == 1 and "cannot reach Redis" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_rabbitmq_is_one_line_naming_it(redis_url, monkeypatch):
    monkeypatch.setenv("INFERQ_BROKER_URL", "amqp://guest:guest@127.0.0.1:1//")  # nothing listens on port 1
    result = _inferq(redis_url, "submit", "--model", "anyone", "Hi")
    assert result.returncode == 1 and "cannot reach the broker" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr

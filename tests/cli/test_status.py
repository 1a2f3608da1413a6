"""`inferq status` against real workers: every live worker, and each model's queue."""

import json
import os
import subprocess
import sys


def _status(redis_url, *args):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "status", *args],
        env={**os.environ, "INFERQ_REDIS_URL": redis_url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_lists_workers_and_queues_for_scripts(redis_url, client, echo_worker, echo_scorer_worker):
    stranded = client.submit_chat([{"role": "user", "content": "x"}], "status-nobody-serves")
    result = _status(redis_url, "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    workers = {worker["hostname"]: worker for worker in status["workers"]}
    assert workers[echo_worker.hostname]["model"] == "echo" and workers[echo_worker.hostname]["concurrency"] == 16
    assert workers[echo_scorer_worker.hostname]["engine"] == "echo"
    assert workers[echo_worker.hostname]["uptime_s"] >= 0
    queues = {queue["model"]: queue for queue in status["queues"]}
    assert queues["echo"]["depth"] == 0
    assert queues["status-nobody-serves"]["depth"] == 1 and queues["status-nobody-serves"]["oldest_age_s"] >= 0
    stranded.cancel()


def test_status_prints_readable_tables(redis_url, echo_worker):
    result = _status(redis_url)
    assert result.returncode == 0, result.stderr
    assert "live worker(s)" in result.stdout and echo_worker.hostname in result.stdout
    assert "oldest waiting" in result.stdout


def test_check_here_is_a_healthcheck_for_workers_on_this_host(redis_url, echo_worker, tmp_path):
    assert _status(redis_url, "--check-here").returncode == 0
    empty = redis_url.rsplit("/", 1)[0] + "/2"  # a database no worker announces itself in
    assert _status(empty, "--check-here").returncode == 1

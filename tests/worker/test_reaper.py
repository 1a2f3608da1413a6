"""Jobs of killed workers (worker/reaper.py): put back after one lease lifetime, finished elsewhere."""

import pytest

from api_client import JobFailed, JobRestarted


def test_a_killed_workers_job_is_finished_by_another_worker(start_worker, client, release):
    wait, let_go = release()
    first = start_worker("echo", "crashy", engine="echo")
    handle = client.submit_chat([{"role": "user", "content": f"begun {wait} ended"}], "crashy")
    stream = handle.stream()
    assert next(stream) == "begun"  # the job runs on the first worker, and waits there
    first.kill()  # SIGKILL: no cleanup, the job stays unacked in Redis
    let_go()
    second = start_worker("echo", "crashy", engine="echo")
    with pytest.raises(JobRestarted):
        for _ in stream:
            pass
    record = handle.result(timeout=120)
    assert (record.attempt, record.worker) == (2, second.hostname)
    assert "".join(handle.stream()) == record.responses[0].response_text  # a new reader sees attempt 2 only
    second.stop()


def test_a_job_that_keeps_killing_workers_fails_with_a_clear_record(start_worker, client):
    first = start_worker("echo", "doomed", engine="echo", env={"INFERQ_MAX_DELIVERIES": "1"})
    handle = client.submit_chat([{"role": "user", "content": "begun [hold]"}], "doomed")
    next(handle.stream())
    first.kill()
    second = start_worker("echo", "doomed", engine="echo", env={"INFERQ_MAX_DELIVERIES": "1"})
    with pytest.raises(JobFailed, match="delivered 2 times") as caught:
        handle.result(timeout=120)
    assert caught.value.record.attempt == 2
    second.stop()

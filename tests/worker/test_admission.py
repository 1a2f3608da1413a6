"""Admission by capacity: without --concurrency a worker reserves as many jobs as its engine runs at
once; the rest stay queued, where any worker can take them."""

import time

from tasks.schemas import JobStatus


def ask(text):
    return [{"role": "user", "content": text}]


def test_a_worker_admits_as_many_jobs_as_its_engine_reports_and_leaves_the_rest_queued(
    start_worker, client, celery_app, release
):
    worker = start_worker("echo", "roomy", engine="echo", concurrency=None, engine_args={"max_running": 3})
    word, let_go = release()
    handles = [client.submit_chat(ask(f"job{i} {word}"), "roomy") for i in range(5)]
    # Jobs leave one queue list in order: the first three start (each streams its first word, then waits).
    assert [next(handle.stream(timeout=60)) for handle in handles[:3]] == ["job0", "job1", "job2"]
    # The broker hands the worker at most three unacked jobs: the other two are still queued.
    assert [queue.depth for queue in client.queues() if queue.model == "roomy"] == [2]
    stats = _stats(celery_app, worker.hostname)
    assert (stats["pool"]["max-concurrency"], stats["prefetch_count"]) == (3, 3)
    assert [info.concurrency for info in client.workers() if info.hostname == worker.hostname] == [3]
    let_go()
    assert [handle.result(timeout=60).status for handle in handles] == [JobStatus.SUCCEEDED] * 5
    worker.stop()


def test_an_explicit_concurrency_overrides_the_engines_capacity(start_worker, client, celery_app):
    worker = start_worker("echo", "narrow", engine="echo", concurrency=2, engine_args={"max_running": 50})
    stats = _stats(celery_app, worker.hostname)
    assert (stats["pool"]["max-concurrency"], stats["prefetch_count"]) == (2, 2)
    assert [info.concurrency for info in client.workers() if info.hostname == worker.hostname] == [2]
    worker.stop()


def _stats(celery_app, hostname: str, bound_s: float = 120) -> dict:
    """`celery inspect stats` of one worker. A worker announces itself (and the harness returns) just
    before its consumer starts: a broadcast sent in between is not heard, so ask until it answers."""
    give_up_at = time.monotonic() + bound_s  # a bound for failure only
    while not (replies := celery_app.control.inspect(destination=[hostname], timeout=2).stats()):
        assert time.monotonic() < give_up_at, f"{hostname} never answered `inspect stats`"
    return replies[hostname]

"""Faults under load, with real processes: every job ends in exactly one record; none is lost or run twice.

Each scenario has a Redis of its own (append-only) and echo workers that answer at a set pace, so jobs
are queued and running when the fault hits. What a scenario asserts holds however fast things run:
the pace only decides how many jobs the fault catches mid-flight.
"""

import asyncio
import os
import signal

import psutil
import pytest
import redis

from tasks import names
from tests.faults.conftest import Tally, read_streams
from tests.waiting import until

WORDS = " ".join(f"w{i}" for i in range(20))
PACE = {"tokens_per_s": 40}  # 20 words: about half a second a job


def ask(i: int, words: str = WORDS):
    return [{"role": "user", "content": f"job{i} {words}"}]


def assert_nothing_lost_or_run_twice(tally: Tally) -> None:
    assert (tally.lost, tally.run_twice) == (0, 0), tally.line()
    assert tally.succeeded + tally.failed_clearly == tally.sent, tally.line()


async def _started(client, handles, count: int) -> None:
    """Returns once `count` of the jobs have streamed something or ended (workers hold them, or held)."""

    async def enough() -> bool:
        return sum([bool(await client.store.events_after(handle.id, 0)) for handle in handles]) >= count

    await until(enough, "the workers never started the jobs")


async def test_sigkill_of_one_of_two_workers_under_100_streamed_jobs(bed):
    doomed, survivor = bed.worker("faulty", **PACE), bed.worker("faulty", **PACE)
    tally = Tally("SIGKILL one of two workers, 100 streamed jobs")
    async with bed.client() as client:
        handles = [await client.submit_chat(ask(i)) for i in range(100)]
        readers = asyncio.create_task(read_streams(handles, tally))
        await _started(client, handles, 20)
        doomed.kill()
        await bed.settle(tally, handles)
        assert_nothing_lost_or_run_twice(tally)  # first: a lost job's stream would never end
        await readers
    assert tally.succeeded == 100 and survivor.process.poll() is None


async def test_sigstop_of_a_worker_for_longer_than_its_lease(bed):
    stalled, _ = bed.worker("faulty", **PACE), bed.worker("faulty", **PACE)
    tally = Tally("SIGSTOP a worker for 3 lease lifetimes, then SIGCONT, 40 jobs")
    async with bed.client() as client:
        handles = [await client.submit_chat(ask(i)) for i in range(40)]
        await _started(client, handles, 10)
        os.kill(stalled.pid, signal.SIGSTOP)
        await asyncio.sleep(9)  # the fault itself: three 3-second lease lifetimes
        os.kill(stalled.pid, signal.SIGCONT)
        await bed.settle(tally, handles)
    assert_nothing_lost_or_run_twice(tally)
    assert tally.succeeded == 40


async def test_a_duplicate_delivery_of_a_running_job(bed, release):
    worker = bed.worker("faulty", concurrency=20)  # a slot for each job and for each copy, which waits in it
    tally = Tally("the same job delivered again while it runs, 10 jobs")
    wait, let_go = release()
    async with bed.client() as client:
        handles = [await client.submit_chat(ask(i, f"start {wait} end")) for i in range(10)]
        await _started(client, handles, 10)
        app = client._celery
        for handle in handles:  # a second copy of each message, as a visibility-timeout redelivery would make
            payload = {"model": "faulty", "queued_at": 0, "messages": ask(0, f"start {wait} end")}
            app.send_task(names.CHAT_TASK, args=[payload], task_id=handle.id, queue=names.queue_for_model("faulty"))
        # every copy in the worker's hands before the first ends, or this would test copies of finished jobs
        await until(lambda: worker.log_tail(4000).count("] received") >= 20, "the copies never reached the worker")
        let_go()
        await bed.settle(tally, handles)
    assert_nothing_lost_or_run_twice(tally)
    assert tally.succeeded == 10


async def test_a_redis_restart_with_append_only_file_under_queued_and_running_jobs(bed):
    bed.worker("faulty", **PACE)
    tally = Tally("Redis restarted (append-only file) under 40 queued and running jobs")
    async with bed.client() as client:
        handles = [await client.submit_chat(ask(i)) for i in range(40)]
        readers = asyncio.create_task(read_streams(handles, tally))
        await _started(client, handles, 5)
        await asyncio.to_thread(bed.redis.restart)
        await bed.settle(tally, handles)
        assert_nothing_lost_or_run_twice(tally)  # first: a lost job's stream would never end
        await readers
        # and the fleet is whole again: a new job after the restart runs
        assert (await client.achat(ask(99, "after")))[0].response_text == "job99 after"
    assert tally.succeeded == 40


async def test_redis_refusing_writes_for_ten_seconds(bed):
    bed.worker("faulty", **PACE)
    tally = Tally("Redis refusing writes for 10 s (maxmemory, noeviction), 40 jobs")
    admin = redis.Redis.from_url(bed.redis.url)
    async with bed.client() as client:
        handles = [await client.submit_chat(ask(i)) for i in range(40)]
        await _started(client, handles, 5)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # every write that needs memory is refused from now on
        await asyncio.sleep(10)  # the fault itself
        admin.config_set("maxmemory", 0)
        await bed.settle(tally, handles)
    assert_nothing_lost_or_run_twice(tally)
    assert tally.succeeded == 40


@pytest.mark.redis_broker
async def test_raw_garbage_on_a_queue_list(bed):
    worker = bed.worker("faulty", concurrency=20)  # a slot for each job and for each copy, which waits in it
    tally = Tally("raw garbage pushed between 20 jobs on the queue list")
    admin = redis.Redis.from_url(bed.redis.url)
    async with bed.client() as client:
        handles = []
        for i in range(20):
            handles.append(await client.submit_chat(ask(i)))
            admin.lpush(names.queue_for_model("faulty"), "\x00not json", '{"json": "but not a message"}')
        await bed.settle(tally, handles)
    assert_nothing_lost_or_run_twice(tally)
    assert tally.succeeded == 20 and worker.process.poll() is None


def _client_redis_sockets(bed) -> int:
    return sum(1 for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == bed.redis.port)


async def _peak_sockets(bed, work):
    """Runs `work` while sampling this process's Redis sockets; returns (its result, the peak)."""
    peak = 0

    async def watch():
        nonlocal peak
        while True:
            peak = max(peak, _client_redis_sockets(bed))
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    try:
        return await work, peak
    finally:
        watcher.cancel()


# What this proves is the client's side (10,000 waiters on a few sockets); the broker only carries the
# submits, and the 2,000 jobs below run through either broker: the RabbitMQ pass leaves this one out.
@pytest.mark.any_broker
async def test_ten_thousand_jobs_waited_for_at_once_by_one_client(bed):
    """The client's scale: 10,000 jobs waited for at once, on a few sockets, and every waiter gets its
    job's one record. The workers' slot is held, so the jobs wait queued; then the client cancels them all
    (what the jobs do in an engine is the next test's business, at a volume a loaded CI machine can run)."""
    bed.worker("faulty", concurrency=1)
    tally = Tally("10,000 jobs waited for at once by one client, then cancelled")
    async with bed.client() as client:
        holder = await client.submit_chat(ask(0, "[hold]"))
        await _started(client, [holder], 1)

        async def wait_for_all():
            handles = await asyncio.gather(
                *[client.submit_chat(ask(i, "tiny job"), stream=False) for i in range(10_000)]
            )
            waiters = [asyncio.create_task(handle.result()) for handle in handles]
            await until(lambda: client.store.hub.num_channels >= 10_000, "the waiters never subscribed")
            await asyncio.gather(*[handle.cancel() for handle in handles])
            await bed.settle(tally, list(handles), bound_s=600)
            await asyncio.gather(*waiters, return_exceptions=True)
            return handles

        handles, peak_sockets = await _peak_sockets(bed, wait_for_all())
        await holder.cancel()
        records = await asyncio.gather(*[handle.record() for handle in handles])
    tally.notes.append(f"peak Redis connections of the client {peak_sockets}")
    assert_nothing_lost_or_run_twice(tally)
    assert tally.failed_clearly == 10_000 and {record.status for record in records} == {"cancelled"}
    assert peak_sockets <= 8


async def test_two_thousand_concurrent_jobs_from_one_client_through_two_workers(bed):
    bed.worker("faulty", concurrency=64)
    bed.worker("faulty", concurrency=64)
    tally = Tally("2,000 concurrent jobs from one client through two workers")
    async with bed.client() as client:

        async def run_all():
            handles = await asyncio.gather(*[client.submit_chat(ask(i, "tiny job"), stream=False) for i in range(2000)])
            return await bed.settle(tally, list(handles), bound_s=600)

        _, peak_sockets = await _peak_sockets(bed, run_all())
    tally.notes.append(f"peak Redis connections of the client {peak_sockets}")
    assert_nothing_lost_or_run_twice(tally)
    assert tally.succeeded == 2000
    assert peak_sockets <= 8

"""The job lease (worker/lease.py) on a real Redis: one holder, a waiting second delivery, fencing."""

import asyncio

import pytest

from tasks import names
from tasks.config import QueueSettings
from tasks.schemas import JobRecord, JobStatus, Timings
from tasks.store import Admission, JobStore
from tests.silencing_proxy import SilencingProxy
from worker.lease import JobLease

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker


async def test_a_second_delivery_waits_then_lets_go_once_the_job_has_a_record(store):
    first, second = JobLease(store, "leased", ttl_s=30), JobLease(store, "leased", ttl_s=30)
    assert (await first.acquire()).outcome == "admitted"
    waiting = asyncio.create_task(second.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()  # it cannot take a held lease
    record = JobRecord(
        job_id="leased", kind="chat", status=JobStatus.SUCCEEDED, model="m", timings=Timings(queued_at=0)
    )
    first.releasing = True
    assert await store.finish(record, lease_token=first.token)  # which lets the lease go
    first.released_by_record = True
    await first.release()
    assert (await waiting).outcome == "recorded"


async def test_a_second_delivery_takes_over_when_the_first_holder_is_gone(store):
    first, second = JobLease(store, "orphaned", ttl_s=30), JobLease(store, "orphaned", ttl_s=30)
    assert (await first.acquire()).outcome == "admitted"
    waiting = asyncio.create_task(second.acquire())
    await first.release()  # as if its lease had lapsed with its worker
    assert await waiting == Admission("admitted", attempt=2)
    await second.release()


async def test_a_lease_taken_away_is_noticed_and_stops_the_copy(store, isolated_redis):
    lease = JobLease(store, "stolen", ttl_s=0.3)
    stopped = asyncio.Event()

    async def stop():
        stopped.set()

    lease.on_lost = stop
    assert (await lease.acquire()).outcome == "admitted"
    # Another worker's delivery holds it now (the first stalled past its lifetime, say).
    isolated_redis.set(names.lease_key("stolen"), "someone-else")
    await asyncio.wait_for(stopped.wait(), 30)
    assert lease.lost.is_set()
    await lease.release()  # releases nothing that is not its own
    assert await store.is_running("stolen")


async def test_a_copy_whose_stop_fails_still_lets_its_lease_go_quietly(store, isolated_redis):
    # The engine's abort raised (vLLM's, or echo's [abort-fails]): the run must still end in an outcome, for an
    # exception out of release() would fail the Celery task, which acks it, and the job would have no record.
    lease = JobLease(store, "stubborn", ttl_s=0.3)
    tried = asyncio.Event()

    async def failing_stop():
        tried.set()
        raise RuntimeError("the engine refused the abort")

    lease.on_lost = failing_stop
    assert (await lease.acquire()).outcome == "admitted"
    isolated_redis.set(names.lease_key("stubborn"), "someone-else")
    await asyncio.wait_for(tried.wait(), 30)  # a bound for failure only
    assert lease.lost.is_set()
    await lease.release()


async def test_a_lease_whose_renewal_gets_no_answer_at_all_is_lost_in_its_lifetime(isolated_url):
    # A partition answers nothing: redis-py's retries wait out its 5 s socket timeout a dozen times (a minute
    # and more) while another worker may run the job once the lease lapsed. The renewal is bounded by the lease.
    async with SilencingProxy(isolated_url) as proxy:
        proxied = JobStore.open(QueueSettings(redis_url=proxy.url))
        try:
            lease = JobLease(proxied, "partitioned", ttl_s=1.5)
            assert (await lease.acquire()).outcome == "admitted"
            proxy.silence(new_connections_too=True)
            # 20 lease lifetimes: room for a loaded machine, and well inside the retries' minute
            await asyncio.wait_for(lease.lost.wait(), 30)
            await lease.release()
        finally:
            await proxied.aclose()

"""Redis behind Sentinel: the master dies (SIGKILL) under queued and running jobs; Sentinel promotes its
replica, and the workers and the client find it there through the same sentinel:// URL. Every job ends
with one record: none lost, none run twice."""

import time

import pytest
import redis

from harness.embedded_redis import EmbeddedRedis
from harness.embedded_sentinel import EmbeddedSentinel
from tests.faults.conftest import FaultBed, Tally
from tests.faults.test_faults import PACE, WORDS, _started, ask, assert_nothing_lost_or_run_twice
from tests.waiting import until

PASSWORD = "fault-secret"
# Longer than a failover (Sentinel waits 1 s before it calls the master down, then elects and promotes):
# a running job keeps its lease across it instead of going back to the queue.
FAILOVER_ENV = {"INFERQ_LEASE_TTL_S": "15"}
# Redis as the broker is what fails over here (with RabbitMQ as broker, only records and streams would)
pytestmark = pytest.mark.redis_broker


@pytest.fixture
def failover(tmp_path):
    master = EmbeddedRedis(PASSWORD, appendonly=True)
    master.start()
    replica = EmbeddedRedis(PASSWORD, appendonly=True, replica_of=master)
    replica.start()
    sentinel = EmbeddedSentinel(master)
    sentinel.start()
    give_up_at = time.monotonic() + 60  # a bound for failure only
    while sentinel.replicas() < 1:  # it asks the master for its replicas as soon as it watches it
        assert time.monotonic() < give_up_at, "Sentinel never found the replica"
        time.sleep(0.05)
    bed = FaultBed(tmp_path, redis_url=sentinel.url)
    yield bed, master, replica, sentinel
    bed.close()
    for server in (sentinel, replica, master):
        server.stop()


async def test_a_sentinel_failover_under_queued_and_running_jobs(failover, release):
    bed, master, replica, sentinel = failover
    bed.worker("faulty", concurrency=4, env=FAILOVER_ENV, **PACE)
    bed.worker("faulty", concurrency=4, env=FAILOVER_ENV, **PACE)
    tally = Tally("Sentinel failover (master SIGKILLed) under 8 running and 32 queued jobs")
    admin = redis.Redis(port=master.port, password=PASSWORD)
    wait, let_go = release()
    async with bed.client() as client:
        # The first 8 fill both workers' slots and cannot end before the test lets them: when the master
        # dies no pop is in flight between master and replica.
        held = [await client.submit_chat(ask(i, f"{wait} {WORDS}")) for i in range(8)]
        # A submit returns once a replica holds the job (tasks/store.py: confirm_submitted).
        queued = [await client.submit_chat(ask(i)) for i in range(8, 40)]
        await _started(client, held, len(held))
        # The workers' pops of the held jobs were written on kombu's connections: on the replica too.
        await _replica_reaches(replica, admin.info("replication")["master_repl_offset"])
        master.kill()
        await _promoted(sentinel, replica)
        let_go()
        await bed.settle(tally, held + queued)
        # and the fleet goes on on the new master
        assert (await client.achat(ask(99, "after")))[0].response_text == "job99 after"
    assert_nothing_lost_or_run_twice(tally)
    assert tally.succeeded == 40
    assert redis.Redis(port=replica.port, password=PASSWORD).info("replication")["role"] == "master"


async def _replica_reaches(replica: EmbeddedRedis, offset: int) -> None:
    observer = redis.Redis(port=replica.port, password=PASSWORD)
    await until(
        lambda: observer.info("replication").get("slave_repl_offset", -1) >= offset, "the replica never caught up"
    )


async def _promoted(sentinel: EmbeddedSentinel, replica: EmbeddedRedis) -> None:
    await until(lambda: sentinel.master_port() == replica.port, "Sentinel never promoted the replica")

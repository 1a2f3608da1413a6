"""Two hosts: a worker in a network namespace of its own, which reaches Redis only over a veth link, shares
one model's jobs with a worker on the host.

The namespace stands in for a second machine: its loopback is its own, so the host's 127.0.0.1 is out of
its reach, and the only way to Redis is the link's address. Jobs that cannot end until the test releases
them fill both workers, so both surely hold jobs at once, however fast anything runs.
"""

import os
import random
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
import redis

from harness.worker_process import WorkerProcess
from tests.faults.conftest import FaultBed, Tally
from tests.waiting import until

SLOTS = 4  # each worker's capacity: twice as many jobs that cannot end fill both workers
# Nothing fails over here, so the default (30 s) lease stays; a 1 s heartbeat keeps the registry's
# running counts fresh.
STEADY_ENV = {"INFERQ_HEARTBEAT_S": "1"}


@dataclass
class OtherHost:
    namespace: str
    redis_side_ip: str  # the host's end of the link: the one address of the host the namespace can reach

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace]

    def reaches(self, ip: str, port: int) -> bool:
        probe = f"import socket; socket.create_connection(({ip!r}, {port}), timeout=10)"
        return subprocess.run([*self.exec_prefix, sys.executable, "-c", probe], capture_output=True).returncode == 0


@pytest.fixture
def other_host():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2's `ip`")
    # Names of this run's own: a crashed run's leftover namespace or link cannot collide with them.
    tag = uuid.uuid4().hex[:8]
    namespace, host_end, inner_end = f"inferq-{tag}", f"iq{tag}h", f"iq{tag}n"  # link names: 15 chars at most
    subnet = _free_subnet()
    made = subprocess.run(["ip", "netns", "add", namespace], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"`ip netns add` failed: {made.stderr.strip()}")
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end)
        _ip("link", "set", inner_end, "netns", namespace)
        _ip("addr", "add", f"{subnet}.1/24", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("-n", namespace, "addr", "add", f"{subnet}.2/24", "dev", inner_end)
        _ip("-n", namespace, "link", "set", inner_end, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        yield OtherHost(namespace, redis_side_ip=f"{subnet}.1")
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)  # takes its peer with it
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _free_subnet() -> str:
    """10.200.X with an X no address of this host uses (a leftover link keeps its own)."""
    addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    return random.choice([f"10.200.{x}" for x in range(256) if f" 10.200.{x}." not in addresses])


def _echo_worker(bed: FaultBed, redis_url: str, hostname: str, command_prefix: list[str]) -> WorkerProcess:
    worker = WorkerProcess(
        redis_url, "echo", "faulty", bed.folder, engine="echo", concurrency=SLOTS, env=STEADY_ENV,
        hostname=hostname, command_prefix=command_prefix,
    )  # fmt: skip
    bed.workers.append(worker)  # before it starts: the bed stops it even if it never announces itself
    return worker.start()


# The namespace reaches the host only at the link's address: RabbitMQ here listens on loopback only.
@pytest.mark.redis_broker
async def test_a_worker_on_another_host_shares_a_models_jobs_over_the_network(other_host, bed, release):
    # Redis answers on the link as well (CONFIG SET bind: same server, same port); its password guards it.
    redis.Redis.from_url(bed.redis.url).config_set("bind", f"127.0.0.1 {other_host.redis_side_ip}")
    link_url = f"redis://:{bed.redis.password}@{other_host.redis_side_ip}:{bed.redis.port}/0"
    assert not other_host.reaches("127.0.0.1", bed.redis.port), "the namespace must not share the host's loopback"
    assert other_host.reaches(other_host.redis_side_ip, bed.redis.port)

    here = _echo_worker(bed, bed.redis.url, f"faulty-{uuid.uuid4().hex[:6]}@host", [])
    there = _echo_worker(bed, link_url, f"faulty@{other_host.namespace}", other_host.exec_prefix)
    # `ip netns exec` execs the worker in place, so its pid is the worker's, inside the namespace
    assert os.readlink(f"/proc/{there.pid}/ns/net") != os.readlink(f"/proc/{here.pid}/ns/net")
    tally = Tally("two hosts: a worker in a network namespace and one on the host, 8 jobs held at once")
    wait, let_go = release()
    prompts = [f"job{i} start {wait} end" for i in range(2 * SLOTS)]
    async with bed.client() as client:
        handles = [await client.submit_chat([{"role": "user", "content": prompt}]) for prompt in prompts]

        async def both_full() -> bool:
            infos = [await client.store.worker(worker.hostname) for worker in (here, there)]
            return all(info is not None and info.num_running == SLOTS for info in infos)

        await until(both_full, "the two workers never held a full load of jobs at once")
        let_go()
        await bed.settle(tally, handles)
        records = [await client.store.record(handle.id) for handle in handles]

    assert (tally.succeeded, tally.lost) == (len(prompts), 0), tally.line()
    assert [record.responses[0].response_text for record in records] == prompts
    assert Counter(record.worker for record in records) == {here.hostname: SLOTS, there.hostname: SLOTS}
    assert here.process.poll() is None and there.process.poll() is None
    # A worker logs `job <id> finished` just after writing the record: once both have stopped, the logs are whole.
    assert [here.stop(), there.stop()] == [0, 0]
    assert [bed.copies_finished(handle.id) for handle in handles] == [1] * len(prompts)

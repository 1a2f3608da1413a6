"""Admission by capacity: a worker reserves as many jobs as its engine runs at once, no more, no fewer.

Celery sizes its thread pool and its prefetch (the jobs it reserves from the broker) from `--concurrency`
before the engine loads; the engine knows its capacity only once it has loaded (vLLM's max_num_seqs is
set from the hardware, SGLang's from its KV cache). So the worker starts with whatever Celery chose, and
this resizes both before the consumer starts: a vLLM worker takes hundreds of jobs at once, and an HF
worker with 8 batch rows takes 8, leaving the rest queued where any idle worker can take them.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery.concurrency.thread import TaskPool as ThreadTaskPool

log = logging.getLogger(__name__)


def admit(worker: Any, slots: int) -> None:
    """Sizes `worker`'s pool and prefetch to `slots` jobs. Runs after the pool has started and before the
    consumer has (the consumer starts last), so no job has been submitted to the pool being replaced."""
    pool = worker.pool
    if not isinstance(pool, ThreadTaskPool):
        return  # the solo pool runs one job at a time by design
    if pool.limit != slots:
        # Threads are spawned as jobs arrive, so a large capacity costs nothing until it is used.
        pool.executor.shutdown(wait=False)
        pool.executor = ThreadPoolExecutor(max_workers=slots)
        pool.limit = slots
    worker.concurrency = slots
    consumer = worker.consumer
    # acks_late with a prefetch multiplier of 1: the broker hands this worker at most `slots` unacked jobs
    consumer.initial_prefetch_count = slots * consumer.prefetch_multiplier
    log.info("admitting %d jobs at once", slots)

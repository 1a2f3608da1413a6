"""The Celery app both sides share: Redis broker, JSON only, defaults fit for long GPU jobs.

Celery's result backend is off: a job's one result is inferq's own record (tasks/store.py), and a
second copy per job (with `result_extended`, the prompt too) would only cost Redis memory. Flower reads
the event stream, which shows a short `argsrepr` instead of the prompt.
"""

from __future__ import annotations

import ssl

from celery import Celery

from tasks.broker import SENTINEL_TRANSPORT, TRANSPORT
from tasks.config import QueueSettings

# Redis has no native priorities: kombu emulates them with one list per step. 0 is the highest.
PRIORITY_STEPS = list(range(10))
DEFAULT_PRIORITY = 5


def make_app(settings: QueueSettings | None = None, *, broker_pool_limit: int = 10) -> Celery:
    settings = settings or QueueSettings()
    app = Celery("inferq", broker=settings.redis_url, set_as_current=False)
    transport_options = {
        # A job unacked for longer than this is delivered again and would run twice (celery#5935).
        "visibility_timeout": settings.visibility_timeout_s,
        "priority_steps": PRIORITY_STEPS,
        "sep": ":",
        "queue_order_strategy": "priority",
    }
    if settings.uses_sentinel:
        # kombu reads the Sentinels from the URL and asks them for this master
        transport_options.update(
            master_name=settings.sentinel_master, sentinel_kwargs={"password": settings.sentinel_password}
        )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],  # pickle in a queue is remote code execution
        # ack late: a worker killed mid-job must leave the job for another worker.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # one job reserved per free slot: a busy worker does not sit on jobs an idle one could run
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options,
        # garbage on a queue list is dropped instead of stopping the worker (celery#7975)
        broker_transport=SENTINEL_TRANSPORT if settings.uses_sentinel else TRANSPORT,
        broker_pool_limit=broker_pool_limit,
        task_ignore_result=True,
        task_default_priority=DEFAULT_PRIORITY,
        # events for Flower
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if settings.uses_tls:
        app.conf.update(broker_use_ssl={"ssl_cert_reqs": ssl.CERT_REQUIRED})
    return app

"""The Celery app both sides share: Redis broker and results, JSON only, defaults fit for long GPU jobs."""

from __future__ import annotations

import ssl

from celery import Celery

from tasks.config import QueueSettings

# Redis has no native priorities: kombu emulates them with one list per step. 0 is the highest.
PRIORITY_STEPS = list(range(10))
DEFAULT_PRIORITY = 5


def make_app(settings: QueueSettings | None = None) -> Celery:
    settings = settings or QueueSettings()
    app = Celery("inferq", broker=settings.redis_url, backend=settings.redis_url, set_as_current=False)
    transport_options = {
        # A job unacked for longer than this is delivered again and would run twice (celery#5935).
        "visibility_timeout": settings.visibility_timeout_s,
        "priority_steps": PRIORITY_STEPS,
        "sep": ":",
        "queue_order_strategy": "priority",
    }
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],  # pickle in a queue is remote code execution
        result_accept_content=["json"],
        # ack late: a worker killed mid-job must leave the job for another worker.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # one job reserved per free slot: a busy worker does not sit on jobs an idle one could run
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options,
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        result_expires=settings.record_ttl_s,
        result_extended=True,
        task_track_started=True,
        task_default_priority=DEFAULT_PRIORITY,
        # events for Flower
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if settings.uses_tls:
        tls = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        app.conf.update(broker_use_ssl=tls, redis_backend_use_ssl=tls)
    return app

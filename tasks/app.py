"""The Celery app both sides share: JSON only, defaults fit for long GPU jobs, on Redis or RabbitMQ.

Celery's result backend is off: a job's one result is inferq's own record (tasks/store.py), and a
second copy per job (with `result_extended`, the prompt too) would only cost Redis memory. Flower reads
the event stream, which shows a short `argsrepr` instead of the prompt.

The broker is Redis (`redis_url`, or Sentinels) unless `broker_url` names RabbitMQ; records and token
streams are on Redis either way. `job_queue` and `broker_priority` are where the two brokers differ for
a producer; the worker's reaper runs on Redis only (RabbitMQ requeues a dead consumer's jobs itself).
"""

from __future__ import annotations

import ssl
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from tasks import names
from tasks.broker import SENTINEL_TRANSPORT, TRANSPORT
from tasks.config import QueueSettings

# inferq's priorities: 0 is the highest, as on kombu's Redis transport (one list per step).
PRIORITY_STEPS = list(range(10))
DEFAULT_PRIORITY = 5


def make_app(
    settings: QueueSettings | None = None, *, broker_pool_limit: int = 10, submits_jobs: bool = True
) -> Celery:
    """`submits_jobs`: a producer's app, whose publishes RabbitMQ confirms; a worker publishes only Flower's
    events, which must not wait for confirms (see `_amqp_conf`)."""
    settings = settings or QueueSettings()
    app = Celery("inferq", broker=settings.broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],  # pickle in a queue is remote code execution
        # ack late: a worker killed mid-job must leave the job for another worker.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # one job reserved per free slot: a busy worker does not sit on jobs an idle one could run
        worker_prefetch_multiplier=1,
        broker_pool_limit=broker_pool_limit,
        task_ignore_result=True,
        task_default_priority=broker_priority(settings, DEFAULT_PRIORITY),
        # events for Flower
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.conf.update(_amqp_conf(settings, submits_jobs) if settings.uses_amqp else _redis_conf(settings))
    return app


def job_queue(settings: QueueSettings, model: str) -> str | Queue:
    """The queue `model`'s jobs go to, declared alike by producers and workers (RabbitMQ refuses a
    second declaration with other arguments)."""
    name = names.queue_for_model(model)
    if not settings.uses_amqp:
        return name
    arguments: dict[str, Any] = {
        # RabbitMQ cancels a consumer that holds a message longer than this (default 30 min) and
        # redelivers it: it must outlast the longest job. RabbitMQ < 3.12 ignores the argument and
        # needs `consumer_timeout` in rabbitmq.conf instead.
        "x-consumer-timeout": settings.visibility_timeout_s * 1000,
    }
    if settings.amqp_queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
    else:
        arguments["x-max-priority"] = len(PRIORITY_STEPS)
    return Queue(name, Exchange(name, type="direct"), routing_key=name, durable=True, queue_arguments=arguments)


def broker_priority(settings: QueueSettings, priority: int | None) -> int | None:
    """inferq's priority (0 highest) as the broker's: AMQP's highest is the largest number."""
    if priority is None or not settings.uses_amqp:
        return priority
    return PRIORITY_STEPS[-1] - priority


def job_priority(settings: QueueSettings, broker_value: int | None) -> int:
    """A delivered message's priority as inferq's (0 highest); a message sent without one has the default."""
    if broker_value is None or broker_value not in PRIORITY_STEPS:
        return DEFAULT_PRIORITY
    return broker_priority(settings, broker_value)  # the mapping is its own inverse


def _redis_conf(settings: QueueSettings) -> dict[str, Any]:
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
    conf: dict[str, Any] = {
        "broker_transport_options": transport_options,
        # garbage on a queue list is dropped instead of stopping the worker (celery#7975)
        "broker_transport": SENTINEL_TRANSPORT if settings.uses_sentinel else TRANSPORT,
    }
    if settings.uses_tls:
        conf["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return conf


def _amqp_conf(settings: QueueSettings, submits_jobs: bool) -> dict[str, Any]:
    conf: dict[str, Any] = {
        # A producer's publish returns once RabbitMQ has the message: a submitted job is never only in a socket
        # buffer. Not in a worker: its event connection is read by the consumer's loop too (for heartbeats), so
        # a pool thread that waits there for a confirm can have it read away by that loop and wait forever,
        # holding the event dispatcher's lock, and with it every thread that finishes a job.
        "broker_transport_options": {"confirm_publish": submits_jobs},
    }
    if settings.broker.startswith("amqps://"):
        conf["broker_use_ssl"] = {"cert_reqs": ssl.CERT_REQUIRED}
    return conf

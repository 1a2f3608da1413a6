"""Gives the jobs of dead workers back to the queue, long before the broker's visibility timeout would.

With acks_late a job whose worker dies stays "unacked" in kombu's Redis hash until the visibility
timeout (hours here, so that no live job is ever delivered twice). But a running inferq job holds a
lease that its worker renews every few seconds; a job unacked for longer than a lease lifetime with
no lease has lost its worker, and kombu's own `restore_by_tag` puts it back at the head of its queue.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from celery import Celery

from tasks import names

log = logging.getLogger(__name__)


def restore_orphans(app: Celery, lease_ttl_s: float, is_running: Callable[[str], bool]) -> list[str]:
    """One sweep; returns the ids of the jobs it put back."""
    restored = []
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        client = channel.client
        delivered_before = time.time() - lease_ttl_s
        for tag in client.zrangebyscore(channel.unacked_index_key, "-inf", delivered_before):
            raw = client.hget(channel.unacked_key, tag)
            if raw is None:
                continue  # acked meanwhile
            headers = json.loads(raw)[0].get("headers") or {}
            if headers.get("task") not in names.JOB_TASKS:
                continue  # another app's message on the same broker: not ours to judge
            job_id = headers["id"]
            if is_running(job_id):
                continue
            # kombu pushes on the left and pops from the right: the right end is the head of the queue
            channel.qos.restore_by_tag(tag, client, leftmost=False)
            restored.append(job_id)
    for job_id in restored:
        log.warning("job %s lost its worker; back on its queue", job_id)
    return restored


class Reaper:
    """Sweeps once per lease lifetime on a daemon thread (kombu's client is synchronous)."""

    def __init__(self, app: Celery, lease_ttl_s: float, is_running: Callable[[str], bool]) -> None:
        self._app = app
        self._lease_ttl_s = lease_ttl_s
        self._is_running = is_running
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inferq-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopped.wait(self._lease_ttl_s):
            try:
                restore_orphans(self._app, self._lease_ttl_s, self._is_running)
            except Exception:  # a broker hiccup must not end the sweeps
                log.exception("orphan sweep failed")

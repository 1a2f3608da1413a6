"""A warm shutdown with a deadline.

Celery's warm shutdown (SIGTERM) stops taking jobs and waits for the running ones for as long as they
run, which for a held or very long job is for ever: the supervisor's patience runs out first and a
SIGKILL takes the worker down mid-write. Here the wait has a bound, `shutdown_grace_s`: once it passes,
every running job is aborted in its engine and its message goes back to the queue unrecorded, for
another worker (its readers are told the job restarted). If the engine does not even answer the abort
within `HAND_BACK_PATIENCE_S`, the process exits anyway: its unacked messages go back to the queue
through the reaper (Redis) or the broker (RabbitMQ), and the orphan guard stops the engine's processes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

HAND_BACK_PATIENCE_S = 30.0
EXIT_AFTER_STUCK_HAND_BACK = 70  # EX_SOFTWARE


class ShutdownClock:
    """Started when the warm shutdown begins; `finished()` when the worker reaches its own cleanup."""

    def __init__(self, grace_s: float, hand_back: Callable[[float], int], describe_stuck: Callable[[], str]) -> None:
        """`hand_back(timeout_s)` stops the running jobs and says how many; TimeoutError if the engine's
        loop does not answer in time. `describe_stuck()` says what still runs, for the log."""
        self._grace_s = grace_s
        self._hand_back = hand_back
        self._describe_stuck = describe_stuck
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:  # a second SIGTERM does not restart the clock
            self._thread = threading.Thread(target=self._run, name="inferq-shutdown-clock", daemon=True)
            self._thread.start()

    def finished(self) -> None:
        self._done.set()

    def _run(self) -> None:
        if self._done.wait(self._grace_s):
            return
        try:
            handed_back = self._hand_back(HAND_BACK_PATIENCE_S)
        except TimeoutError:
            self._exit_now("the engine's loop did not answer")
        log.warning(
            "the shutdown grace (%g s) ran out: %d running jobs were stopped and go back to the queue",
            self._grace_s,
            handed_back,
        )
        if not self._done.wait(HAND_BACK_PATIENCE_S):
            self._exit_now("the engine did not let go of its jobs")

    def _exit_now(self, why: str) -> None:
        log.error(
            "%s within %g s of the shutdown grace; exiting now. Still running:\n%s",
            why,
            HAND_BACK_PATIENCE_S,
            self._describe_stuck(),
        )
        logging.shutdown()
        os._exit(EXIT_AFTER_STUCK_HAND_BACK)

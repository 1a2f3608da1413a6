"""The cancels a worker heard lately, for jobs it was not running yet.

A job is admitted (tasks/store.py: JobStore.admit reads its cancel mark) and then registered as running,
with no await in between; but the cancel listener may hear a cancel published just after the admission
before the job's coroutine resumes to register. The listener notes every cancel here, and a job that
registers looks here too: no cancel falls between the mark and the listener. An entry is kept far longer
than that gap can last (a few loop turns), and then forgotten.
"""

from __future__ import annotations

import time
from collections.abc import Callable

KEPT_S = 300.0


class RecentCancels:
    def __init__(self, kept_s: float = KEPT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._kept_s = kept_s
        self._clock = clock
        self._heard: dict[str, float] = {}  # job id -> when heard; insertion order is time order

    def note(self, job_id: str) -> None:
        now = self._clock()
        self._heard.pop(job_id, None)
        while self._heard:  # the oldest first, up to the first one still kept
            oldest = next(iter(self._heard))
            if now - self._heard[oldest] < self._kept_s:
                break
            del self._heard[oldest]
        self._heard[job_id] = now

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._heard

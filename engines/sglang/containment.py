"""Keeps SGLang's process-wide habits out of the worker that hosts it.

Read in SGLang 0.5.23 (srt/entrypoints/engine.py, srt/managers/tokenizer_manager.py, srt/utils/common.py):
- importing its engine module installs uvloop as the global event-loop policy;
- launching sets the multiprocessing start method to "spawn" (force=True) and re-configures the root
  logger (`logging.basicConfig(force=True)`), replacing Celery's handlers;
- `Engine.shutdown()`, also registered with atexit, SIGKILLs *every* child of the host process, the
  worker's orphan guard included.
Signal handlers it installs only on the main thread; the worker creates engines on its engine-loop
thread, so SIGTERM and SIGQUIT stay Celery's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil


@contextlib.contextmanager
def kept_event_loop_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(policy)


@dataclass
class Launched:
    """The processes a launch started: the only ones its shutdown may stop."""

    pids: set[int] = field(default_factory=set)


@contextlib.contextmanager
def contained_launch() -> Iterator[Launched]:
    start_method = multiprocessing.get_start_method(allow_none=True)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    before = _children()
    launched = Launched()
    try:
        yield launched
    finally:
        launched.pids = _children() - before
        multiprocessing.set_start_method(start_method, force=True)
        root.handlers[:] = handlers
        root.setLevel(level)


def stop_processes(pids: set[int], timeout_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`, to these processes and their descendants only."""
    processes = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            processes += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout_s)


def _children() -> set[int]:
    return {child.pid for child in psutil.Process(os.getpid()).children()}

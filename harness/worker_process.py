"""`inferq worker` as a child process, started and waited for until it announces itself.

`inferq demo` runs its workers this way, and so do the queue tests: exactly as a user would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tasks.config import QueueSettings
from tasks.store import JobStore
from worker.orphan_guard import die_with_parent


class WorkerProcess:
    def __init__(
        self,
        redis_url: str,
        model: str,
        name: str,
        log_dir: Path,
        *,
        engine: str = "huggingface",
        concurrency: int | None = 8,  # None: the engine's capacity
        engine_args: dict | None = None,
        env: dict[str, str] | None = None,
        hostname: str | None = None,
        command_prefix: Sequence[str] = (),
        extra_args: Sequence[str] = (),
    ) -> None:
        self.redis_url = redis_url
        self.name = name
        self.hostname = hostname or f"{name}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        self.log_path = log_dir / f"{self.hostname.replace('@', '_')}.log"
        # A prefix such as `ip netns exec NS` runs the worker on another network, as on another host.
        self.command = [
            *command_prefix, sys.executable, "-m", "cli.main", "worker",
            "--engine", engine, "--model", model, "--name", name,
            "--hostname", self.hostname,
            "--engine-args", json.dumps(engine_args or {}), *extra_args,
        ]  # fmt: skip
        if concurrency is not None:
            self.command += ["--concurrency", str(concurrency)]
        # The URL (and its password) goes by environment: argv is world-readable in /proc.
        self.env = {**os.environ, **(env or {}), "INFERQ_REDIS_URL": redis_url}
        self.process: subprocess.Popen[bytes] | None = None
        self._terminated = False

    def start(self, timeout_s: float = 180) -> WorkerProcess:
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        # A loop of its own on a thread of its own: the caller may be inside an event loop (async tests).
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, self._wait_for_announcement(timeout_s)).result()
        return self

    async def _wait_for_announcement(self, timeout_s: float) -> None:
        store = JobStore.open(QueueSettings(redis_url=self.redis_url))
        try:
            deadline = time.monotonic() + timeout_s
            while await store.worker(self.hostname) is None:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {self.hostname} did not start:\n{self.log_tail()}")
                await asyncio.sleep(0.1)
        finally:
            await store.aclose()

    @property
    def pid(self) -> int:
        return self.process.pid

    def terminate(self) -> None:
        """SIGTERM without waiting: many workers then shut down side by side, and `stop` waits for each."""
        if self.process is not None and self.process.poll() is None and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        if sig != signal.SIGTERM or not self._terminated:  # one SIGTERM is the warm shutdown; a second adds nothing
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

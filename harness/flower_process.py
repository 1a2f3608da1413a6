"""`celery -A tasks.monitor flower` as a child process, started and waited for until /healthcheck answers.

Flower's tests run it this way, and so does docs/screenshot.py: exactly as a user (or compose) starts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.embedded_redis import free_port
from worker.orphan_guard import die_with_parent


class FlowerProcess:
    def __init__(self, redis_url: str, log_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, "INFERQ_REDIS_URL": redis_url, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120) -> FlowerProcess:
        """`timeout_s` only turns a Flower that never answers into a failure."""
        command = [sys.executable, "-m", "celery", "-A", "tasks.monitor", "flower", f"--port={self.port}",
                   "--address=127.0.0.1"]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Flower did not start:\n{self.log_path.read_text()}")
            time.sleep(0.2)
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthcheck", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

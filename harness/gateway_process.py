"""`inferq gateway` as a child process, started and waited for until /health answers.

The gateway's tests run it this way, and so does `inferq bench` (its end-to-end part): exactly as a user would.
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


class GatewayProcess:
    """`python -m cli.main gateway`, exactly as a user starts it, waited for until /health answers."""

    def __init__(
        self,
        redis_url: str,
        log_path: Path,
        *,
        api_keys: str = "",
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, "INFERQ_REDIS_URL": redis_url, "INFERQ_GATEWAY_API_KEYS": api_keys, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 180) -> GatewayProcess:  # a bound for a hang only: seconds on a loaded machine
        command = [sys.executable, "-m", "cli.main", "gateway", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a host dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

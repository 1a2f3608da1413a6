"""`vllm serve` as a child process (through `benchmarks.vllm_cli`, which answers its version question on a CPU
host), started, waited for until /health answers, and stopped with its whole process group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.embedded_redis import free_port
from worker.orphan_guard import die_with_parent

START_TIMEOUT_S = 900  # vLLM's start on two loaded cores: a minute or more; a bound on a hang, not a bet


class VllmServeProcess:
    """vLLM's OpenAI server on `model_dir`, with the settings the worker's vLLM engine uses (engines/vllm.py):
    fp32 on CPU, eager, no stats, the priority policy (its requests all of one priority, as the bench's are
    through the gateway, so the worker's urgent-first scheduler never acts either)."""

    def __init__(self, model_dir: str, served_name: str, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "benchmarks.vllm_cli", "serve", model_dir,
            "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--enforce-eager", "--disable-log-stats", "--disable-uvicorn-access-log",
            "--scheduling-policy", "priority",
        ]  # fmt: skip
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> VllmServeProcess:
        with open(self.log_path, "wb") as log:
            # a session of its own: its API server and EngineCore are stopped together, as one group
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient() as http:
            while True:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"vllm serve did not start (exit code {self.process.returncode}); see {self.log_path}"
                    )
                try:
                    if (await http.get(f"{self.url}/health", timeout=2)).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

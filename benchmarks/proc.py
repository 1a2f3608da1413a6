"""CPU time a process has used, read from /proc: how a part charges work to the worker that did it; and
Redis's, read from the server itself (embedded or not, local or not)."""

from __future__ import annotations

import os

import redis


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(url: str) -> float:
    """The Redis server's CPU time so far, user + system, in seconds (`INFO cpu`)."""
    with redis.Redis.from_url(url) as client:
        info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

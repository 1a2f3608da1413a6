"""Kills what a worker leaves behind when it dies without cleaning up (SIGKILL, the OOM killer).

vLLM's EngineCore and its model workers outlive a killed parent, holding the GPU's memory, so the
worker's replacement cannot load. This small process, started by the worker with PR_SET_PDEATHSIG,
keeps a snapshot of the worker's descendants and kills them when the worker dies. A pid is only
killed if its start time still matches the snapshot, so a reused pid is never hit.

Run as `python -m worker.orphan_guard <worker pid>`; stdlib only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SNAPSHOT_INTERVAL_S = 0.5


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A `preexec_fn`: the kernel sends the child SIGTERM when its parent dies, even by SIGKILL."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(worker_pid: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "worker.orphan_guard", str(worker_pid)], preexec_fn=die_with_parent)


def descendants(root: int) -> dict[int, int]:
    """pid -> start time (clock ticks since boot) of every descendant of `root`.

    Walks the kernel's child lists (`/proc/<pid>/task/<tid>/children`), reading only the worker's own tree:
    the guard looks twice a second, and a scan of every process on a busy host costs it far more."""
    if not Path(f"/proc/{root}/task/{root}/children").exists():
        return _descendants_by_scan(root)  # a kernel without CONFIG_PROC_CHILDREN
    found: dict[int, int] = {}
    pending = _children(root)
    while pending:
        pid = pending.pop()
        if (started := _start_time(pid)) is not None:
            found[pid] = started
            pending += _children(pid)
    return found


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):  # gone meanwhile
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(kid) for kid in (task / "children").read_text().split()]
    return kids


def _descendants_by_scan(root: int) -> dict[int, int]:
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1]: ppid
        started[pid] = int(fields[19])  # field 22 of stat: starttime
    found: dict[int, int] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found[pid] = started[pid]
        pending += children.get(pid, [])
    return found


def main(worker_pid: int) -> None:
    worker_died = False

    def on_parent_death(*_: object) -> None:
        nonlocal worker_died
        worker_died = True

    signal.signal(signal.SIGTERM, on_parent_death)  # PR_SET_PDEATHSIG delivers SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the worker is not for us
    snapshot: dict[int, int] = {}
    while not worker_died and os.getppid() == worker_pid:
        latest = {pid: start for pid, start in descendants(worker_pid).items() if pid != os.getpid()}
        if latest.keys() != snapshot.keys():
            # into the worker's log: which processes die with it (tests wait for this line too)
            print(f"orphan guard: watching {sorted(latest)}", file=sys.stderr, flush=True)
        snapshot = latest
        time.sleep(SNAPSHOT_INTERVAL_S)
    for pid, start in snapshot.items():
        if _start_time(pid) == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _start_time(pid: int) -> int | None:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19])
    except OSError:
        return None


if __name__ == "__main__":
    main(int(sys.argv[1]))

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker.orphan_guard import _descendants_by_scan, descendants

# The broker plays no part in what is tested here: the RabbitMQ pass leaves it out.
pytestmark = pytest.mark.any_broker

# A stand-in worker: starts its guard, then a grandchild that would outlive it (as vLLM's EngineCore does).
PARENT = """
import subprocess, sys, time
from worker import orphan_guard
import os
orphan_guard.start(os.getpid())
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_killed_parents_descendants_are_killed_by_its_guard():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    grandchild = int(parent.stdout.readline())
    for line in parent.stderr:  # the guard says what it watches whenever that changes
        if line.startswith("orphan guard: watching") and str(grandchild) in line:
            break
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 120  # a bound for failure only; the guard acts within a snapshot interval
    while Path(f"/proc/{grandchild}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{grandchild}").exists()


def test_descendants_are_found_recursively():
    sleeper = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        while not descendants(sleeper.pid):  # until the shell has started its child
            time.sleep(0.01)
        found = descendants(os.getpid())
        assert sleeper.pid in found
        assert any(pid not in (sleeper.pid,) and pid in descendants(sleeper.pid) for pid in found)
        # the kernel's child lists give what a scan of every process gives (kernels without them scan)
        assert descendants(sleeper.pid) == _descendants_by_scan(sleeper.pid) != {}
    finally:
        sleeper.kill()
        sleeper.wait()

"""The cancels a worker heard lately (worker/recent_cancels.py): kept for a while, then forgotten."""

import pytest

from worker.recent_cancels import RecentCancels

pytestmark = pytest.mark.any_broker


def test_a_cancel_is_remembered_for_its_time_then_forgotten():
    now = [0.0]
    heard = RecentCancels(kept_s=10, clock=lambda: now[0])
    heard.note("a")
    now[0] = 5
    heard.note("b")
    assert "a" in heard and "b" in heard and "c" not in heard
    now[0] = 12
    heard.note("c")  # hearing a cancel forgets the ones heard too long ago
    assert "a" not in heard and "b" in heard and "c" in heard
    heard.note("b")  # heard again: kept from now
    now[0] = 20
    heard.note("d")
    assert "b" in heard and "c" in heard

"""How many of a model's rows a batch may hold at once: all of them but a share kept free for interactive chats.

A batch's jobs sit below every interactive priority, so a free slot takes a waiting chat first; but with
every row busy a chat still waits for one to free up (measured with `inferq bench --parts batch`: 2.9x the
idle TTFT at p50 and 19x at p99 on SmolLM2 with 8 rows). So a batch never fills the last rows: it holds at
most the model's live capacity (the sum of its workers' slots) less `reserve` of it, at least one row;
a chat arriving beside a batch joins the engine's running rows at its next step instead of waiting (and the
engine, told the job's priority, makes that step the chat's prefill alone: 1.9x at p50 with both). The
capacity is re-read from the fleet view as workers come and go. One share can pace several batches (the
gateway's coordinator shares one across every batch it drives).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter

from api_client import AsyncInferQClient

INTERACTIVE_RESERVE = 0.125  # of a model's rows, kept free of batch lines
FLEET_RECHECK_S = 1.0  # a waiting line re-reads the fleet this often (a worker may have joined)


class FleetShare:
    def __init__(self, client: AsyncInferQClient, reserve: float = INTERACTIVE_RESERVE) -> None:
        if not 0 <= reserve < 1:
            raise ValueError("reserve must be in [0, 1)")
        self._client, self._reserve = client, reserve
        self._in_flight: Counter[str] = Counter()
        self._freed = asyncio.Event()

    async def enter(self, model: str) -> None:
        """Waits until a batch line of `model` may be submitted, and counts it in."""
        while True:
            self._freed.clear()  # before the check: a line that leaves while the fleet is read sets it again
            limit = await self.limit(model)
            if self._in_flight[model] < limit:  # checked and counted in one step of the loop: never one too many
                self._in_flight[model] += 1
                return
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that comes as the event is
            # set, and a cancelled batch (the gateway's cancel, Ctrl-C) would go on feeding lines for good.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLEET_RECHECK_S):
                    await self._freed.wait()

    def leave(self, model: str) -> None:
        self._in_flight[model] -= 1
        self._freed.set()

    async def limit(self, model: str) -> int | float:
        if not self._reserve:
            return math.inf
        capacity = sum(info.concurrency for info in await self._client.store.fleet.serving(model))
        if not capacity:
            return 1  # nobody serves it: one line at a time finds that out (NoSuchModel), none hangs
        return max(1, capacity - math.ceil(capacity * self._reserve))

"""Runs batch lines as jobs: the lowest priority, a bounded window in flight, a job id per line.

Each line is submitted with the idempotency key `batch:<batch id>:<custom_id>` (the custom_id's SHA-256 where
that would pass the key's 255 characters), so its job id is fixed by the batch and the line: a run that dies
and is resumed submits the lines it had in flight again and gets their jobs back (finished, running or
queued) instead of new ones; no line runs twice. A full queue is waited out (the window keeps the batch from
filling it again), never reported as the line's failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from api_client import AsyncInferQClient, AsyncJobHandle
from api_client.jobs import LONE_SURROGATE, MAX_IDEMPOTENCY_KEY_CHARS, MAX_TAG_CHARS, encodes, idempotent_job_id
from batch.fleet_share import FleetShare
from batch.lines import BatchLine
from engines.errors import InferqError, InvalidRequest
from tasks.app import PRIORITY_STEPS
from tasks.errors import QueueFull
from tasks.schemas import JobRecord

# Below every interactive priority: a worker's free slot goes to a waiting chat first (inferq's 0 is highest).
BATCH_PRIORITY = PRIORITY_STEPS[-1]
DEFAULT_WINDOW = 64
QUEUE_FULL_PAUSE_S = (0.5, 5.0)  # first and longest pause before submitting again to a full queue

OnResult = Callable[[BatchLine, str, JobRecord | None, InferqError | None], Awaitable[None] | None]


@dataclass
class BatchProgress:
    total: int
    done: int = 0
    failed: int = 0
    in_flight: int = 0
    output_tokens: int = 0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def eta_s(self) -> float | None:
        finished = self.done + self.failed
        if not finished:
            return None
        return (time.monotonic() - self.started_at) / finished * (self.total - finished)


def line_key(batch_id: str, custom_id: str) -> str:
    key = f"batch:{batch_id}:{custom_id}"
    if len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and encodes(custom_id):
        return key
    # A custom_id takes 512 characters; one UTF-8 cannot encode still names a job id (its line fails unsent).
    digest = hashlib.sha256(custom_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"batch:{batch_id}:sha256:{digest}"


def line_tags(batch_id: str, custom_id: str) -> dict[str, str]:
    """What Flower shows of a line's job and finds the batch's lines by (`kwargs:batch=ID`); a custom_id too
    long for a tag is cut, never refused."""
    return {"batch": batch_id, "line": custom_id[:MAX_TAG_CHARS]}


async def run_batch(
    client: AsyncInferQClient,
    lines: Iterable[BatchLine],
    *,
    batch_id: str,
    progress: BatchProgress,
    on_result: OnResult,
    window: int = DEFAULT_WINDOW,
    priority: int = BATCH_PRIORITY,
    owner: str | None = None,
    share: FleetShare | None = None,
) -> BatchProgress:
    """Runs every line, calling `on_result(line, job_id, record, error)` as each ends (one at a time), and
    counting in `progress`. The jobs are `owner`'s (a gateway tenant's), or the client's own. `share` keeps
    rows free for interactive chats (batch/fleet_share.py; by default a share of this batch's own)."""
    owner = owner or client.owner
    share = share or FleetShare(client)
    slots = asyncio.Semaphore(window)
    running: set[asyncio.Task] = set()
    broken: list[Exception] = []  # what a line's task met outside its answer (Redis, the journal's disk)

    async def run_one(line: BatchLine) -> None:
        try:
            job_id = idempotent_job_id(owner, line_key(batch_id, line.custom_id))
            try:
                record, error = await (await _submit(client, line, batch_id, priority, owner)).result(), None
            except InferqError as failure:  # refused at submit, or the job failed: that line's answer
                record, error = None, failure
            if record is not None:
                progress.done += 1
                progress.output_tokens += record.usage.completion_tokens if record.usage else 0
            else:
                progress.failed += 1
            outcome = on_result(line, job_id, record, error)
            if outcome is not None:
                await outcome
        # Anything else is not the line's (Redis, the journal's disk): its answer was not kept, so the loop
        # raises it before feeding another line, and a resume submits the line again.
        except Exception as failure:
            broken.append(failure)

    def counted_out(line: BatchLine) -> Callable[[asyncio.Task], None]:
        # A done callback, not run_one's `finally`: a task cancelled before it started never runs its body,
        # and a share kept one too many would hold a gateway's every later batch of the model one row short.
        def leave(_: asyncio.Task) -> None:
            progress.in_flight -= 1
            share.leave(line.model)
            slots.release()

        return leave

    try:
        for line in lines:
            await slots.acquire()  # a million lines never become a million tasks, nor queued messages
            if broken:  # a line's answer could not be kept: stop here, and a resume carries on
                slots.release()
                raise broken[0]
            try:
                await share.enter(line.model)  # and never take the rows kept for interactive chats
            except BaseException:
                slots.release()
                raise
            progress.in_flight += 1
            task = asyncio.create_task(run_one(line))
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(counted_out(line))
        await asyncio.gather(*running)
        if broken:
            raise broken[0]
    finally:
        for task in running:  # interrupted: the jobs go on, and a resume finds them by their ids
            task.cancel()
        # every line counted out of the share before this returns (the caller may start another batch on it)
        await asyncio.gather(*running, return_exceptions=True)
    return progress


async def _submit(
    client: AsyncInferQClient, line: BatchLine, batch_id: str, priority: int, owner: str | None
) -> AsyncJobHandle:
    # The client names a job's own text that UTF-8 cannot encode; a custom_id rides only in the job's key and
    # tags, where it would fail outside inferq's errors and stop the batch instead of failing its line.
    if not encodes(line.custom_id):
        raise InvalidRequest(LONE_SURROGATE, field="custom_id")
    pause_s = QUEUE_FULL_PAUSE_S[0]
    key, tags = line_key(batch_id, line.custom_id), line_tags(batch_id, line.custom_id)
    while True:
        try:
            if line.url == "/v1/score":
                return await client.submit_score(
                    line.texts, line.model, conversations=line.conversations, priority=priority, owner=owner,
                    idempotency_key=key, tags=tags, **line.options,
                )  # fmt: skip
            # unstreamed: nobody reads a line's tokens as they come, and publishing them costs the worker
            if line.url == "/v1/completions":
                return await client.submit_completion(
                    line.prompt, line.model, priority=priority, owner=owner, stream=False,
                    idempotency_key=key, tags=tags, **line.options,
                )  # fmt: skip
            return await client.submit_chat(
                line.messages, line.model, priority=priority, owner=owner, stream=False,
                idempotency_key=key, tags=tags, **line.options,
            )  # fmt: skip
        except QueueFull:
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, QUEUE_FULL_PAUSE_S[1])

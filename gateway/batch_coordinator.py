"""Drives the Batch API's batches to their end, from whichever gateway holds a batch's lease.

Every gateway runs one coordinator. It scans the active batches each `scan_s`; a batch whose lease is free
(nobody drives it: it is new, or its gateway died) is taken and driven: `validating` (the input read, bad lines
answered as errors) → `in_progress` (the lines run as jobs through the shared batch runner: the lowest
priority, a window in flight, each line's job id fixed by the batch and the line) → `finalizing` (the output
and error files written) → `completed`, or `cancelled` / `expired`.

Nothing is kept in the coordinator that is not in Redis: each answered line is written once, by custom_id,
as it ends (so the lines already answered are skipped by whoever takes over), and a line in flight when its
gateway died is submitted again under its job id, which finds its job instead of starting another. A lost
lease (this gateway stalled past `lease_s`) stops this coordinator's run of the batch; whoever took the lease
writes each remaining line once, whatever the first still had in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterator

from redis.exceptions import RedisError

from api_client import AsyncInferQClient
from api_client.jobs import idempotent_job_id
from batch.file_store import FileStore
from batch.fleet_share import FleetShare
from batch.lines import BatchLine, LineError, json_lines
from batch.runner import BatchProgress, line_key, run_batch
from engines.errors import InferqError
from gateway.batch_lines import openai_lines
from gateway.batch_objects import ENDED
from gateway.batch_outputs import answered_line, failed_line, refused_line
from tasks.errors import NoSuchModel, error_from_info
from tasks.schemas import JobRecord, JobStatus

log = logging.getLogger(__name__)

# A refused line has no usable custom_id (a duplicate's is its first line's): it is kept under its line number.
_REFUSED_KEY = "\x00line-{}"


def output_file_id(batch_id: str, succeeded: bool) -> str:
    """Fixed by the batch, so two coordinators that ever both finalized it write the same file."""
    return f"file-{batch_id.removeprefix('batch_')}-{'output' if succeeded else 'errors'}"


class BatchCoordinator:
    def __init__(
        self, client: AsyncInferQClient, files: FileStore, *, lease_s: float, scan_s: float, window: int
    ) -> None:
        self._client, self._files = client, files
        self._store = client.store.batches
        self._lease_s, self._scan_s, self._window = lease_s, scan_s, window
        self._token = uuid.uuid4().hex
        self._share = FleetShare(client)  # every batch this gateway drives leaves the same rows to chats
        self._driving: dict[str, asyncio.Task] = {}

    async def run(self) -> None:
        """Scans for batches to drive until cancelled (the gateway's shutdown)."""
        try:
            while True:
                try:
                    await self._scan()
                except RedisError as error:  # Redis restarting: the next scan tries again
                    log.warning("batch scan failed: %s", error)
                await asyncio.sleep(self._scan_s)
        finally:
            for task in list(self._driving.values()):
                task.cancel()
            await asyncio.gather(*self._driving.values(), return_exceptions=True)

    async def _scan(self) -> None:
        for batch_id in await self._store.active_batches():
            if batch_id in self._driving or not await self._uses_my_store(batch_id):
                continue
            if await self._store.take_lease(batch_id, self._token, self._lease_s):
                task = asyncio.create_task(self._drive(batch_id))
                self._driving[batch_id] = task
                task.add_done_callback(lambda _, batch_id=batch_id: self._driving.pop(batch_id, None))

    async def _uses_my_store(self, batch_id: str) -> bool:
        """A batch whose files are in another store (a gateway configured apart) is left to its own gateways:
        here its input would look missing and the batch would be failed for nothing."""
        fields = await self._store.batch(batch_id)
        return fields is not None and fields.get("files_url") == self._files.url

    async def _drive(self, batch_id: str) -> None:
        keeper = asyncio.create_task(self._keep_lease(batch_id, asyncio.current_task()))
        try:
            await self._advance(batch_id)
        except (RedisError, OSError) as error:  # given back: a later scan (here or elsewhere) carries on
            log.warning("batch %s: %s; it will be taken up again", batch_id, error)
        except Exception:  # a bug: logged whole, and the batch is taken up again by a later scan
            log.exception("batch %s: driving it failed; it will be taken up again", batch_id)
        finally:
            keeper.cancel()
            try:
                await asyncio.shield(self._store.release_lease(batch_id, self._token))
            except RedisError:
                pass  # it lapses by itself

    async def _keep_lease(self, batch_id: str, driver: asyncio.Task) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                held = await self._store.renew_lease(batch_id, self._token, self._lease_s)
            except RedisError:
                continue  # the lease may still be ours; the next renewal tells
            if not held:
                log.warning("batch %s: lease lost; another gateway drives it now", batch_id)
                driver.cancel()
                return

    async def _advance(self, batch_id: str) -> None:
        fields = await self._store.batch(batch_id)
        if fields is None:
            return
        if fields["status"] in ENDED:  # its driver died between ending it and retiring it
            await self._store.retire_batch(batch_id)
            return
        lines, refusals = await self._read(fields)
        if lines is None and fields["status"] in ("validating", "in_progress"):
            await self._fail(batch_id, "input_file_missing", f"input file {fields['input_file_id']} is gone")
            return
        if fields["status"] == "validating":
            for refusal in refusals:
                await self._store.record_line(batch_id, _REFUSED_KEY.format(refusal.index),
                                              json.dumps(refused_line(refusal)), succeeded=False)  # fmt: skip
            await self._store.update_batch(batch_id, {"total": len(lines) + len(refusals)})
            await self._store.transition(batch_id, "in_progress", _now(), ("validating",))
        fields = await self._store.batch(batch_id)
        if fields["status"] == "in_progress":
            await self._run_lines(batch_id, fields, lines)
            await self._store.transition(batch_id, "finalizing", _now(), ("in_progress",))
            # finalizing now, or as a cancel (cancelling) or the expiry (finalizing) left it
            fields = await self._store.batch(batch_id)
        if fields["status"] == "cancelling" and lines:  # a cancel its last driver may not have carried out
            answered = await self._store.answered_ids(batch_id)
            await self._stop_jobs(batch_id, fields["owner"], self._maybe_started(lines, answered))
        if fields["status"] in ("finalizing", "cancelling"):
            await self._finalize(batch_id, fields, lines or [], refusals)

    async def _read(self, fields: dict[str, str]) -> tuple[list[BatchLine] | None, list[LineError]]:
        raw = await self._files.read(fields["input_file_id"])
        if raw is None:
            return None, []
        lines, refusals = [], []
        text = json_lines(raw.decode("utf-8", errors="replace"))
        for line in openai_lines(text, default_model=None, endpoint=fields["endpoint"]):
            (lines if isinstance(line, BatchLine) else refusals).append(line)
        return lines, refusals

    async def _run_lines(self, batch_id: str, fields: dict[str, str], lines: list[BatchLine]) -> None:
        owner = fields["owner"]
        answered = await self._store.answered_ids(batch_id)
        todo = [line for line in lines if line.custom_id not in answered]
        todo = await self._unserved_answered(batch_id, todo, owner)
        progress = BatchProgress(total=len(todo))
        in_flight: dict[str, BatchLine] = {}

        def feed() -> Iterator[BatchLine]:
            for line in todo:
                in_flight[line.custom_id] = line
                yield line

        async def on_result(line: BatchLine, job_id: str, record: JobRecord | None, error: InferqError | None):
            answer = answered_line(line, record) if record is not None else failed_line(line, job_id, error)
            await self._store.record_line(batch_id, line.custom_id, json.dumps(answer), succeeded=record is not None)
            in_flight.pop(line.custom_id, None)

        runner = asyncio.create_task(run_batch(self._client, feed(), batch_id=batch_id, progress=progress,
                                               on_result=on_result, window=self._window, owner=owner,
                                               share=self._share))  # fmt: skip
        try:
            while not runner.done():
                await asyncio.wait([runner], timeout=self._scan_s)
                await self._note_progress(batch_id, progress)
                now = await self._store.batch(batch_id)  # a cancel, or a window moved, since the last look
                status, expired = now["status"], time.time() >= int(now["expires_at"])
                if status == "cancelling" or expired:
                    runner.cancel()
                    await asyncio.gather(runner, return_exceptions=True)
                    await self._stop_jobs(batch_id, owner, in_flight)
                    if expired and status != "cancelling":
                        answered = await self._store.answered_ids(batch_id)
                        await self._expire(batch_id, [line for line in todo if line.custom_id not in answered])
                    return
            runner.result()
        finally:
            runner.cancel()
        await self._note_progress(batch_id, progress)

    def _maybe_started(self, lines: list[BatchLine], answered: set[str]) -> dict[str, BatchLine]:
        """The unanswered lines that can have jobs: a driver feeds the unanswered lines in input order with a
        window in flight, so they are among the first `window` of them, whoever drove the batch before."""
        unanswered = (line for line in lines if line.custom_id not in answered)
        return {line.custom_id: line for line in itertools.islice(unanswered, self._window)}

    async def _unserved_answered(self, batch_id: str, lines: list[BatchLine], owner: str) -> list[BatchLine]:
        """Answers the lines whose model no live worker serves with the routes' 404 at once, rather than after
        the fleet's grace period each; returns the others. A line a driver before this one had submitted keeps
        its job (it may have run, or run once a worker is back), which answers it as any job is answered."""
        fleet = self._client.store.fleet
        unserved = {model for model in {line.model for line in lines} if not await fleet.serving(model)}
        if not unserved:
            return lines
        maybe_started = self._maybe_started(lines, answered=set())  # `lines` are the unanswered ones
        kept = []
        for line in lines:
            if line.model not in unserved:
                kept.append(line)
                continue
            job_id = idempotent_job_id(owner, line_key(batch_id, line.custom_id))
            if line.custom_id in maybe_started and await self._client.find_job(job_id) is not None:
                kept.append(line)
                continue
            error = NoSuchModel(
                f"no live worker serves model {line.model!r} (served: {', '.join(sorted(fleet.served()))})"
            )
            await self._store.record_line(batch_id, line.custom_id, json.dumps(failed_line(line, job_id, error)),
                                          succeeded=False)  # fmt: skip
        return kept

    async def _note_progress(self, batch_id: str, progress: BatchProgress) -> None:
        completed, failed = await self._store.line_counts(batch_id)
        eta = progress.eta_s
        await self._store.update_batch(batch_id, {
            "completed": completed, "failed": failed, "in_flight": progress.in_flight,
            "output_tokens": progress.output_tokens, "eta_s": "" if eta is None else f"{eta:.1f}",
        })  # fmt: skip

    async def _stop_jobs(self, batch_id: str, owner: str, in_flight: dict[str, BatchLine]) -> None:
        """Cancels the jobs of the lines in flight. A job that ended before the cancel reached it keeps its
        answer: the runner, stopped, may not have written it yet, and a line a worker answered is never dropped."""
        for custom_id, line in in_flight.items():
            handle = await self._client.find_job(idempotent_job_id(owner, line_key(batch_id, custom_id)))
            if handle is None:
                continue
            await handle.cancel()  # a finished job stays as it is
            record = await handle.record()
            if record is None or record.status == JobStatus.CANCELLED:
                continue
            if record.error is None:
                answer, succeeded = answered_line(line, record), True
            else:
                answer, succeeded = failed_line(line, handle.id, error_from_info(record.error, record)), False
            await self._store.record_line(batch_id, custom_id, json.dumps(answer), succeeded=succeeded)

    async def _expire(self, batch_id: str, unanswered: list[BatchLine]) -> None:
        """OpenAI's expiry: every line not answered in time gets a `batch_expired` error line."""
        for line in unanswered:
            error = {"code": "batch_expired", "message": "the batch expired before this line ran"}
            expired = {"id": f"batch_req_expired_{line.index}", "custom_id": line.custom_id, "response": None,
                       "error": error}  # fmt: skip
            await self._store.record_line(batch_id, line.custom_id, json.dumps(expired), succeeded=False)
        await self._store.update_batch(batch_id, {"ending": "expired"})
        await self._store.transition(batch_id, "finalizing", _now(), ("in_progress",))

    async def _finalize(
        self, batch_id: str, fields: dict[str, str], lines: list[BatchLine], refusals: list[LineError]
    ) -> None:
        order = {line.custom_id: line.index for line in lines}
        order.update({_REFUSED_KEY.format(refusal.index): refusal.index for refusal in refusals})
        written: dict[str, str] = {}
        for succeeded in (True, False):
            answers = [(order.get(custom_id, len(order)), custom_id, line)
                       async for custom_id, line in self._store.lines(batch_id, succeeded)]  # fmt: skip
            if not answers:
                continue
            file_id = output_file_id(batch_id, succeeded)
            data = "".join(f"{line}\n" for _, _, line in sorted(answers)).encode()
            await self._files.write(file_id, data)
            await self._store.add_file(file_id, fields["owner"], _now(), {
                "id": file_id, "bytes": str(len(data)), "created_at": str(_now()), "purpose": "batch_output",
                "filename": f"{batch_id}_{'output' if succeeded else 'error'}.jsonl", "files_url": self._files.url,
            })  # fmt: skip
            written["output_file_id" if succeeded else "error_file_id"] = file_id
        completed, failed = await self._store.line_counts(batch_id)
        await self._store.update_batch(batch_id, {**written, "completed": completed, "failed": failed, "in_flight": 0})
        ending = "cancelled" if fields["status"] == "cancelling" else fields.get("ending", "completed")
        await self._store.transition(batch_id, ending, _now(), (fields["status"],))
        await self._store.retire_batch(batch_id)

    async def _fail(self, batch_id: str, code: str, message: str) -> None:
        await self._store.update_batch(batch_id, {"errors": json.dumps([{"code": code, "message": message}])})
        await self._store.transition(batch_id, "failed", _now(), ("validating", "in_progress"))
        await self._store.retire_batch(batch_id)


def _now() -> int:
    return int(time.time())

"""Drives the Batch API's batches to their end, from whichever gateway holds a batch's lease.

Every gateway runs one coordinator. It scans the active batches each `scan_s`; a batch whose lease is free
(nobody drives it: it is new, or its gateway died) is taken and driven: `validating` (the input read, bad lines
answered as errors) → `in_progress` (the lines run as jobs through the shared batch runner: the lowest
priority, a window in flight, each line's job id fixed by the batch and the line) → `finalizing` (the output
and error files written) → `completed`, or `cancelled` / `expired`.

Nothing is kept in the coordinator that is not in Redis or the input file: each answered line is written
once, by custom_id, as it ends (so the lines already answered are skipped by whoever takes over), and a line
in flight when its gateway died is submitted again under its job id, which finds its job instead of starting
another. A refused line is no answer: it is read from the input again by whoever finalizes the batch, so no
custom_id can ever stand for it. A lost lease (this gateway stalled past `lease_s`) stops this coordinator's
run of the batch, and its writes to the batch no longer land; whoever took the lease writes each remaining
line once, whatever the first still had in flight. A batch that this code fails to drive
`MAX_DRIVE_FAILURES` times in a row fails, rather than being taken up for ever.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid

from kombu.exceptions import OperationalError as BrokerUnreachable
from redis.exceptions import RedisError

from api_client import AsyncInferQClient
from api_client.jobs import idempotent_job_id
from batch.file_store import FileStore
from batch.fleet_share import FleetShare
from batch.lines import BatchLine, LineError
from batch.runner import BatchProgress, line_key, run_batch
from engines.errors import InferqError, InvalidRequest
from gateway.batch_lines import BatchInput, read_batch_input
from gateway.batch_objects import ENDED
from gateway.batch_outputs import answered_line, expired_line, failed_line, write_output_files
from tasks.errors import LeaseLost, NoSuchModel, error_from_info
from tasks.schemas import JobRecord, JobStatus

log = logging.getLogger(__name__)

# Drives in a row that raised (a bug, or input this code cannot handle) before the batch is failed: a
# bug met again by every driver would otherwise take the batch up, and fail it, for ever.
MAX_DRIVE_FAILURES = 3
_NOT_ENDED = ("validating", "in_progress", "finalizing", "cancelling")


class BatchCoordinator:
    def __init__(
        self,
        client: AsyncInferQClient,
        files: FileStore,
        *,
        lease_s: float,
        scan_s: float,
        window: int,
        max_drives: int = 4,
    ) -> None:
        self._client, self._files = client, files
        self._store = client.store.batches
        self._lease_s, self._scan_s, self._window = lease_s, scan_s, window
        # A drive holds its batch's parsed input (up to the upload cap) for the batch's life: a gateway takes up
        # this many at once, and leaves the rest to another gateway or to its next free drive.
        self._max_drives = max_drives
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
            if len(self._driving) >= self._max_drives:
                return
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
        # Redis, the file store or the broker away: an outage, not the batch's fault; a later scan carries on
        except (RedisError, OSError, BrokerUnreachable) as error:
            log.warning("batch %s: %s; it will be taken up again", batch_id, error)
        except LeaseLost as error:  # its keeper stops this drive too: the lease's holder carries the batch on
            log.warning("%s", error)
        except Exception:  # a bug: logged whole, and the batch is taken up again by a later scan, a few times
            log.exception("batch %s: driving it failed", batch_id)
            try:
                await self._count_drive_failure(batch_id)
            except RedisError:
                pass  # uncounted: the next drive counts its own
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
        try:
            batch_input = await self._read(fields)
        except InvalidRequest as error:  # over the cap: OpenAI fails such a batch whole
            await self._fail(batch_id, "too_many_requests", error.message, param=error.field)
            return
        if batch_input is None and fields["status"] in ("validating", "in_progress"):
            await self._fail(batch_id, "input_file_missing", f"input file {fields['input_file_id']} is gone")
            return
        lines, refusals = (batch_input.lines, batch_input.refusals) if batch_input else ([], [])
        if fields["status"] == "validating":
            counts = {"total": len(lines) + len(refusals), "failed": len(refusals)}
            if await self._store.update_driven_batch(batch_id, self._token, counts):
                await self._store.transition(batch_id, "in_progress", _now(), ("validating",))
            fields = await self._store.batch(batch_id)
        if "total" not in fields:  # cancelled before it was validated: none of its lines was looked at
            lines, refusals = [], []
        if fields["status"] == "in_progress":
            if time.time() < int(fields["expires_at"]) and await self._run_lines(batch_id, fields, lines, refusals):
                # every line is answered: a cancel or the expiry that came meanwhile came too late to stop any
                await self._store.transition(batch_id, "finalizing", _now(), ("in_progress", "cancelling"))
            fields = await self._store.batch(batch_id)
            if fields["status"] == "in_progress":  # stopped by the expiry (a cancel leaves it cancelling)
                await self._expire(batch_id, fields, lines)
                fields = await self._store.batch(batch_id)
        if fields["status"] == "cancelling":  # a cancel this driver, or its last one, may not have carried out
            await self._stop_jobs(batch_id, fields, lines)
        if fields["status"] in ("finalizing", "cancelling"):
            await self._finalize(batch_id, fields, lines, refusals)

    async def _read(self, fields: dict[str, str]) -> BatchInput | None:
        raw = await self._files.read(fields["input_file_id"])
        if raw is None:
            return None
        # on a thread: a batch's worth of bodies to validate would hold every stream on this loop meanwhile
        return await asyncio.to_thread(read_batch_input, raw, fields["endpoint"])

    async def _run_lines(
        self, batch_id: str, fields: dict[str, str], lines: list[BatchLine], refusals: list[LineError]
    ) -> bool:
        """Runs the unanswered lines: True once each is answered, False as soon as a cancel or the expiry is
        seen (their jobs go on: `_stop_jobs` stops them)."""
        owner = fields["owner"]
        # Before any line is submitted: the widest window any driver fed this batch with bounds which lines may
        # have jobs, whatever window the gateway that looks later has (INFERQ_GATEWAY_BATCH_WINDOW is per gateway).
        widest = max(self._window, _widest_window(fields))
        if widest > _widest_window(fields) and not await self._store.update_driven_batch(
            batch_id, self._token, {"widest_window": widest}
        ):
            raise LeaseLost(f"batch {batch_id}: another gateway drives it now")
        fields = {**fields, "widest_window": str(widest)}
        answered = await self._store.answered_ids(batch_id)
        todo = [line for line in lines if line.custom_id not in answered]
        todo = await self._unserved_answered(batch_id, fields, todo)
        progress = BatchProgress(total=len(todo))

        async def on_result(line: BatchLine, job_id: str, record: JobRecord | None, error: InferqError | None):
            answer = answered_line(line, record) if record is not None else failed_line(line, job_id, error)
            await self._store.record_line(batch_id, line.custom_id, json.dumps(answer), succeeded=record is not None)

        runner = asyncio.create_task(run_batch(self._client, todo, batch_id=batch_id, progress=progress,
                                               on_result=on_result, window=self._window, owner=owner,
                                               share=self._share))  # fmt: skip
        try:
            while True:
                await asyncio.wait([runner], timeout=self._scan_s)
                if runner.done():  # looked at first: a last line that ended meanwhile leaves nothing to stop
                    break
                await self._note_progress(batch_id, progress, refusals)
                now = await self._store.batch(batch_id)  # a cancel, or a window moved, since the last look
                if now["status"] == "cancelling" or time.time() >= int(now["expires_at"]):
                    return False
            runner.result()
        finally:
            runner.cancel()  # and waited for: a line it was submitting is submitted before its jobs are stopped
            await asyncio.gather(runner, return_exceptions=True)
        await self._note_progress(batch_id, progress, refusals)
        return True

    def _maybe_started(
        self, fields: dict[str, str], lines: list[BatchLine], answered: set[str]
    ) -> dict[str, BatchLine]:
        """The unanswered lines that can have jobs: a driver feeds the unanswered lines in input order with a
        window in flight, so they are among the first (widest window any driver used) of them."""
        unanswered = (line for line in lines if line.custom_id not in answered)
        window = max(self._window, _widest_window(fields))
        return {line.custom_id: line for line in itertools.islice(unanswered, window)}

    async def _unserved_answered(
        self, batch_id: str, fields: dict[str, str], lines: list[BatchLine]
    ) -> list[BatchLine]:
        """Answers the lines whose model no live worker serves with the routes' 404 at once, rather than after
        the fleet's grace period each; returns the others. A line a driver before this one had submitted keeps
        its job (it may have run, or run once a worker is back), which answers it as any job is answered."""
        fleet = self._client.store.fleet
        unserved = {model for model in {line.model for line in lines} if not await fleet.serving(model)}
        if not unserved:
            return lines
        owner = fields["owner"]
        maybe_started = self._maybe_started(fields, lines, answered=set())  # `lines` are the unanswered ones
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

    async def _note_progress(self, batch_id: str, progress: BatchProgress, refusals: list[LineError]) -> None:
        completed, failed = await self._store.line_counts(batch_id)
        eta = progress.eta_s
        fields = {
            "completed": completed, "failed": failed + len(refusals), "in_flight": progress.in_flight,
            "output_tokens": progress.output_tokens, "eta_s": "" if eta is None else f"{eta:.1f}",
        }  # fmt: skip
        if progress.done + progress.failed:  # this drive got lines answered: the last one's failure is not in a row
            fields["drive_failures"] = 0
        await self._store.update_driven_batch(batch_id, self._token, fields)

    async def _count_drive_failure(self, batch_id: str) -> None:
        fields = await self._store.batch(batch_id)
        if fields is None or fields["status"] in ENDED:
            return
        failures = int(fields.get("drive_failures", 0)) + 1
        if failures < MAX_DRIVE_FAILURES:
            await self._store.update_driven_batch(batch_id, self._token, {"drive_failures": failures})
            return
        await self._fail(batch_id, "internal_error", f"the gateway failed to drive this batch {failures} times in a "
                         "row; its operator finds why in the gateways' logs, by the batch's id")  # fmt: skip

    async def _stop_jobs(self, batch_id: str, fields: dict[str, str], lines: list[BatchLine]) -> None:
        """Cancels the jobs of the unanswered lines that can have one (this driver's or a driver's before it). A
        job that ended before the cancel reached it keeps its answer: the runner, stopped, may not have written
        it yet, and a line a worker answered is never dropped; a line answered already is left as it is."""
        owner = fields["owner"]
        answered = await self._store.answered_ids(batch_id)
        for custom_id, line in self._maybe_started(fields, lines, answered).items():
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

    async def _expire(self, batch_id: str, fields: dict[str, str], lines: list[BatchLine]) -> None:
        """OpenAI's expiry: the jobs a cancel would stop are stopped, and every line not answered in time gets
        a `batch_expired` error line (one answered meanwhile keeps its answer)."""
        await self._stop_jobs(batch_id, fields, lines)
        answered = await self._store.answered_ids(batch_id)
        for line in (line for line in lines if line.custom_id not in answered):
            await self._store.record_line(batch_id, line.custom_id, json.dumps(expired_line(line)), succeeded=False)
        if await self._store.update_driven_batch(batch_id, self._token, {"ending": "expired"}):
            await self._store.transition(batch_id, "finalizing", _now(), ("in_progress",))

    async def _finalize(
        self, batch_id: str, fields: dict[str, str], lines: list[BatchLine], refusals: list[LineError]
    ) -> None:
        written = await write_output_files(self._files, self._store, batch_id, fields["owner"], lines, refusals)
        completed, failed = await self._store.line_counts(batch_id)
        counts = {"completed": completed, "failed": failed + len(refusals), "in_flight": 0}
        if not await self._store.update_driven_batch(batch_id, self._token, {**written, **counts}):
            return  # the lease was lost: the batch's next driver ends it
        ending = "cancelled" if fields["status"] == "cancelling" else fields.get("ending", "completed")
        await self._store.transition(batch_id, ending, _now(), (fields["status"],))
        await self._store.retire_batch(batch_id)

    async def _fail(self, batch_id: str, code: str, message: str, param: str | None = None) -> None:
        """Ends the batch as failed. One that failed past its validation keeps what it had answered, in its output
        and error files (by custom_id: its input may be what is missing), as an expiry keeps it: retiring the batch
        deletes its answers, and hours of them must not go with a file store that came back empty, say."""
        error = {"code": code, "message": message, "param": param}
        fields = await self._store.batch(batch_id)
        written: dict[str, str] = {}
        if fields is not None and "total" in fields:
            try:
                written = await write_output_files(self._files, self._store, batch_id, fields["owner"], [], [])
            except Exception:  # the files cannot be written now either: the failure still ends the batch
                log.exception("batch %s: failing it, its answers could not be written to files", batch_id)
        if await self._store.update_driven_batch(batch_id, self._token, {"errors": json.dumps([error]), **written}):
            await self._store.transition(batch_id, "failed", _now(), _NOT_ENDED)
            await self._store.retire_batch(batch_id)


def _widest_window(fields: dict[str, str]) -> int:
    return int(fields.get("widest_window") or 0)


def _now() -> int:
    return int(time.time())

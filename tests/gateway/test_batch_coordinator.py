"""The Batch API coordinator's edges: lines no job could carry, refusals kept apart from answers, the cap on a
batch's lines, a batch no driver can drive, a last line that ends while a cancel or the expiry comes, and an
expiry that stops every job a driver may have started. Through the `openai` package and a real gateway where
the gateway's own timing plays no part; a coordinator of the test's own (the real class, on the session's
Redis and echo workers, over a file store no gateway of the session uses) where the test must say when it
wakes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import pytest
from kombu.exceptions import OperationalError

from api_client.jobs import idempotent_job_id
from batch.file_store import LocalFileStore
from batch.runner import BatchProgress, line_key
from gateway.batch_coordinator import MAX_DRIVE_FAILURES, BatchCoordinator
from gateway.batch_lines import MAX_REQUESTS_PER_BATCH
from tasks.errors import JobCancelled
from tests.gateway.test_batches import ENDED, chat_line, finished, jsonl, lines_of
from tests.waiting import until

OWNER = "tenant-of-the-coordinator-tests"


async def _ran_to_its_end(oai, name: str, lines: list):
    uploaded = await oai.files.create(file=(name, jsonl(lines)), purpose="batch")
    created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")  # fmt: skip
    return await finished(oai, created.id)


async def test_lines_holding_lone_surrogates_are_refused_by_field_and_the_batch_completes(oai, gateway):
    template = '{{"custom_id": "{}", "url": "/v1/chat/completions", "body": {{"model": "echo", "messages": '
    template += '[{{"role": "user", "content": "{}"}}]}}}}'
    raw = [template.format("ok", "fine"), template.format("\\ud800", "x"), template.format("c1", "a \\udfff b")]
    batch = await _ran_to_its_end(oai, "surrogates.jsonl", raw)
    counts = batch.request_counts
    assert (batch.status, counts.total, counts.completed, counts.failed) == ("completed", 3, 1, 2)
    errors = await lines_of(oai, batch.error_file_id)
    assert [(line["custom_id"], line["response"], line["error"]["line"]) for line in errors] == [
        (None, None, 2),
        ("c1", None, 3),
    ]
    assert errors[0]["error"]["message"].startswith("custom_id: holds a lone surrogate")
    assert errors[1]["error"]["message"].startswith("body.messages.0.content: holds a lone surrogate")


async def test_a_custom_id_that_spells_a_refusals_old_key_is_still_answered(oai, gateway):
    # Refusals were once kept among the answers under "\x00line-<N>": such a custom_id then counted as answered.
    lines = ["{not json", chat_line("\x00line-0", "answer me")]
    batch = await _ran_to_its_end(oai, "nul.jsonl", lines)
    counts = batch.request_counts
    assert (batch.status, counts.total, counts.completed, counts.failed) == ("completed", 2, 1, 1)
    [answer] = await lines_of(oai, batch.output_file_id)
    assert answer["custom_id"] == "\x00line-0"
    assert answer["response"]["body"]["choices"][0]["message"]["content"] == "answer me"
    [refusal] = await lines_of(oai, batch.error_file_id)
    assert refusal["error"]["line"] == 1 and refusal["error"]["message"].startswith("not a JSON object")


async def test_a_batch_over_the_cap_fails_naming_the_cap(oai, gateway):
    # the cheapest lines there are (each would be refused): the cap counts requests, not bytes
    raw = b"1\n" * (MAX_REQUESTS_PER_BATCH + 1)
    uploaded = await oai.files.create(file=("many.jsonl", raw), purpose="batch")
    created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")  # fmt: skip
    batch = await finished(oai, created.id)
    assert batch.status == "failed" and batch.failed_at and batch.output_file_id is None
    [error] = batch.errors.data
    assert (error.code, error.param) == ("too_many_requests", "input_file_id")
    assert f"{MAX_REQUESTS_PER_BATCH:,} requests" in error.message


@contextlib.asynccontextmanager
async def coordinator_of_its_own(inferq, files, *, scan_s: float, window: int = 4, max_drives: int = 4):
    """A coordinator driving the batches of `files` (and so no other test's), woken each `scan_s`."""
    coordinator = BatchCoordinator(inferq, files, lease_s=60, scan_s=scan_s, window=window, max_drives=max_drives)
    running = asyncio.create_task(coordinator.run())
    try:
        yield coordinator
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def add_batch(inferq, files, lines: list, *, status="validating", **fields) -> str:
    """A batch as the create route makes it, less the `fields` given as None, in the coordinator's store."""
    batch_id, input_file_id, now = f"batch_{uuid.uuid4().hex}", f"file-{uuid.uuid4().hex}", int(time.time())
    await files.write(input_file_id, jsonl(lines).getvalue())
    fields = {"id": batch_id, "endpoint": "/v1/chat/completions", "input_file_id": input_file_id,
              "completion_window": "24h", "status": status, "created_at": str(now), "expires_at": str(now + 3600),
              "metadata": "{}", "files_url": files.url, **fields}  # fmt: skip
    fields = {name: value for name, value in fields.items() if value is not None}
    assert await inferq.store.batches.add_batch(batch_id, OWNER, now, fields) == "added"
    return batch_id


async def ended(inferq, batch_id: str) -> dict[str, str]:
    async def fields_once_ended():
        fields = await inferq.store.batches.batch(batch_id)
        return fields if fields["status"] in ENDED else None

    await until(fields_once_ended, f"batch {batch_id} never ended")
    return await inferq.store.batches.batch(batch_id)


def job_of(batch_id: str, custom_id: str) -> str:
    return idempotent_job_id(OWNER, line_key(batch_id, custom_id))


async def test_a_batch_no_driver_can_drive_fails_after_a_few_tries(inferq, echo_worker, tmp_path):
    files = LocalFileStore(str(tmp_path))
    # a hash this code cannot read (no endpoint): every drive raises, as a bug met by every driver would
    batch_id = await add_batch(inferq, files, [chat_line("a", "never runs")], endpoint=None)
    async with coordinator_of_its_own(inferq, files, scan_s=0.05):
        fields = await ended(inferq, batch_id)
    [error] = json.loads(fields["errors"])
    assert (fields["status"], error["code"]) == ("failed", "internal_error")
    assert f"{MAX_DRIVE_FAILURES} times in a row" in error["message"]
    assert batch_id not in await inferq.store.batches.active_batches()


async def test_a_batch_that_fails_partway_keeps_the_answers_it_had_in_its_output_file(inferq, echo_worker, tmp_path):
    # Failing retired the batch, which deleted its answers: hours of them, lost with no file written.
    files = LocalFileStore(str(tmp_path))
    lines = [chat_line("a", "answered"), chat_line("b", "never runs")]
    batch_id = await add_batch(inferq, files, lines, endpoint=None, status="in_progress", total="2", failed="0")
    answer = {"id": "batch_req_a", "custom_id": "a", "error": None,
              "response": {"status_code": 200, "request_id": "r", "body": {"answered": True}}}  # fmt: skip
    assert await inferq.store.batches.record_line(batch_id, "a", json.dumps(answer), succeeded=True)  # a drive's
    async with coordinator_of_its_own(inferq, files, scan_s=0.05):  # every drive raises: no endpoint
        fields = await ended(inferq, batch_id)
    assert fields["status"] == "failed" and json.loads(fields["errors"])[0]["code"] == "internal_error"
    assert json.loads(await files.read(fields["output_file_id"])) == answer


async def test_a_broker_away_for_more_drives_than_fail_a_batch_is_an_outage_not_a_failure(
    inferq, echo_worker, tmp_path, monkeypatch
):
    files = LocalFileStore(str(tmp_path))
    real, refused = inferq._celery.send_task, []

    def send_task(*args, **kwargs):  # the broker away for the first sends: kombu gives up and raises
        if len(refused) < 2 * MAX_DRIVE_FAILURES:
            refused.append(args)
            raise OperationalError("the broker is away (for the test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(inferq._celery, "send_task", send_task)
    batch_id = await add_batch(inferq, files, [chat_line("a", "sent at last")])
    async with coordinator_of_its_own(inferq, files, scan_s=0.05):
        fields = await ended(inferq, batch_id)
    assert len(refused) == 2 * MAX_DRIVE_FAILURES  # each a drive that ended on the outage
    assert (fields["status"], fields["completed"]) == ("completed", "1")


@pytest.mark.parametrize("interruption", ["expiry", "cancel"])
async def test_a_last_line_ending_as_the_expiry_or_a_cancel_comes_completes_the_batch(
    interruption, inferq, echo_worker, release, tmp_path
):
    files = LocalFileStore(str(tmp_path))
    word, let_go = release()
    batch_id = await add_batch(inferq, files, [chat_line("only", f"{word} done")])
    # woken only by its runner's end: the expiry (or cancel) and the line's end are there at the same look
    async with coordinator_of_its_own(inferq, files, scan_s=3600):
        await until(lambda: inferq.store.is_running(job_of(batch_id, "only")), "the line never ran")
        if interruption == "expiry":
            await inferq.store.batches.update_batch(batch_id, {"expires_at": "1"})
        else:  # the cancel route's own move
            assert await inferq.store.batches.transition(batch_id, "cancelling", int(time.time()), ("in_progress",))
        let_go()
        fields = await ended(inferq, batch_id)
    assert (fields["status"], fields["completed"], fields["failed"]) == ("completed", "1", "0")


@pytest.fixture(scope="module")
def narrow_worker(start_worker):
    """One row of a model of its own: a batch's share of it is one line in flight at a time."""
    return start_worker("echo", "echo-narrow", engine="echo", concurrency=1)


@pytest.mark.parametrize(("window", "widest"), [(3, None), (1, "3")], ids=["the-same-window", "a-narrower-window"])
async def test_an_expiry_stops_every_job_a_driver_before_may_have_started(
    inferq, narrow_worker, tmp_path, window, widest
):
    files = LocalFileStore(str(tmp_path))
    lines = [chat_line(f"held{i}", f"wait [hold] {i}", model="echo-narrow") for i in range(3)]
    # What a driver with a window of 3, on a fleet with room then, left: three jobs, one running, two queued.
    # The window is a gateway's setting: one with a window of 1 taking over looked only at the first
    # unanswered line, and the expiry left the other two jobs to run on; the batch keeps the widest.
    batch_id = await add_batch(inferq, files, lines, status="in_progress", total="3", expires_at="1",
                               widest_window=widest)  # fmt: skip
    handles = [
        await inferq.submit_chat(line["body"]["messages"], "echo-narrow", owner=OWNER, stream=False,
                                 idempotency_key=line_key(batch_id, line["custom_id"]))
        for line in lines
    ]  # fmt: skip
    await until(lambda: inferq.store.is_running(handles[0].id), "the first line never ran")
    async with coordinator_of_its_own(inferq, files, scan_s=1, window=window):
        fields = await ended(inferq, batch_id)
    assert (fields["status"], fields["completed"], fields["failed"]) == ("expired", "0", "3")
    for handle in handles:
        with pytest.raises(JobCancelled):
            await handle.result(timeout=120)  # a bound for failure only


async def test_a_gateway_drives_no_more_batches_at_once_than_it_may_and_the_rest_wait_their_turn(
    inferq, echo_worker, tmp_path
):
    # Each drive holds its batch's input in memory for the batch's life: the first gateway to scan took them all.
    files, release = LocalFileStore(str(tmp_path)), tmp_path / "release"
    batch_ids = [await add_batch(inferq, files, [chat_line(name, f"{name} [wait:{release}]")]) for name in "ab"]

    async def statuses() -> list[str]:
        return sorted([(await inferq.store.batches.batch(batch_id))["status"] for batch_id in batch_ids])

    async with coordinator_of_its_own(inferq, files, scan_s=0.05, max_drives=1) as coordinator:
        scans = _counted_scans(coordinator)
        await until(lambda: _one_running(statuses), "neither batch ever ran")
        since = scans[0]
        # three whole scans with the one drive taken (however slow the machine): none took up the other batch
        await until(lambda: scans[0] >= since + 3, "the coordinator stopped scanning")
        assert await statuses() == ["in_progress", "validating"]
        release.touch()
        assert [(await ended(inferq, batch_id))["status"] for batch_id in batch_ids] == ["completed"] * 2


async def _one_running(statuses) -> bool:
    return "in_progress" in await statuses()


def _counted_scans(coordinator: BatchCoordinator) -> list[int]:
    """The scans the coordinator has finished, counted in the list's one item as they end."""
    finished, scan = [0], coordinator._scan

    async def counted() -> None:
        await scan()
        finished[0] += 1

    coordinator._scan = counted  # looked up on each turn of its loop
    return finished


async def test_a_driver_past_its_lease_writes_no_progress_over_the_batch(inferq, tmp_path):
    files = LocalFileStore(str(tmp_path))
    batch_id = await add_batch(inferq, files, [chat_line("a", "x")], status="completed", completed="1", total="1")
    await inferq.store.batches.retire_batch(batch_id)  # as the batch's next driver left it
    stalled = BatchCoordinator(inferq, files, lease_s=60, scan_s=1, window=4)  # its lease long lost
    await stalled._note_progress(batch_id, BatchProgress(total=1), [])
    fields = await inferq.store.batches.batch(batch_id)
    assert (fields["status"], fields["completed"], fields["total"]) == ("completed", "1", "1")

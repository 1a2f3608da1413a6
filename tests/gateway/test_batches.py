"""The Batch API through the official `openai` package: files in, a batch run by the gateways' coordinators
over real echo workers, output and error files out; per-line refusals; tenants; cancel; and a 2,000-line
batch that outlives a SIGKILLed worker and a SIGKILLed gateway with every line answered exactly once."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
import uuid

import openai
import pytest
import redis

from api_client.jobs import idempotent_job_id
from batch.file_store import LocalFileStore
from batch.lines import BatchLine
from batch.runner import line_key
from gateway.batch_coordinator import BatchCoordinator
from gateway.tenants import bare_key_tenant
from tasks import names
from tasks.errors import JobCancelled
from tests.gateway.conftest import API_KEY
from tests.waiting import until

ENDED = {"completed", "failed", "expired", "cancelled"}


def chat_line(custom_id: str, text: str, model: str = "echo", **body) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list) -> io.BytesIO:
    # surrogateescape: a test's "\udcNN" stands for the raw byte 0xNN, which no UTF-8 text holds
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    return io.BytesIO(text.encode("utf-8", errors="surrogateescape"))


async def finished(oai: openai.AsyncOpenAI, batch_id: str):
    batch = None

    async def ended() -> bool:
        nonlocal batch
        batch = await oai.batches.retrieve(batch_id)
        return batch.status in ENDED

    await until(ended, f"batch {batch_id} never ended")
    return batch


async def lines_of(oai: openai.AsyncOpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in (await oai.files.content(file_id)).text.splitlines()]


async def test_a_batch_answers_each_line_once_and_refuses_bad_lines_by_name(oai, gateway):
    good = [chat_line(f"q{i}", f"answer {i}") for i in range(12)]
    bad = [
        "{not json",
        chat_line("q3", "a second q3"),  # duplicate custom_id
        {**chat_line("s1", "scores"), "url": "/v1/score"},  # not the batch's endpoint
        chat_line("t1", "hot", temperature=9),  # a body field out of range
        chat_line("m1", "nobody", model="no-such-model"),  # runs, and fails as the route would: 404
        json.dumps(chat_line("l1", "caf\u00e9")).replace("\\u00e9", "\udce9"),  # Latin-1, not UTF-8: ran garbled
    ]
    uploaded = await oai.files.create(file=("input.jsonl", jsonl(good + bad)), purpose="batch")
    assert (uploaded.purpose, uploaded.filename) == ("batch", "input.jsonl")
    created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                       completion_window="24h", metadata={"run": "nightly"})  # fmt: skip
    assert (created.status, created.metadata) == ("validating", {"run": "nightly"})

    batch = await finished(oai, created.id)
    assert batch.status == "completed" and batch.completed_at and batch.in_progress_at
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (18, 12, 6)
    answers = await lines_of(oai, batch.output_file_id)
    assert [line["custom_id"] for line in answers] == [f"q{i}" for i in range(12)]  # input order
    owner = bare_key_tenant(API_KEY)
    for i, line in enumerate(answers):
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"]["choices"][0]["message"]["content"] == f"answer {i}"
        assert line["response"]["request_id"] == idempotent_job_id(owner, line_key(batch.id, f"q{i}"))
    errors = {(line["custom_id"], (line["error"] or {}).get("message", "")): line for line in
              await lines_of(oai, batch.error_file_id)}  # fmt: skip
    messages = sorted(message for _, message in errors)
    assert any(message.startswith("not a JSON object") for message in messages)
    # without its custom_id: q3's one result line is its first line's answer
    assert (None, "custom_id: 'q3' appears on an earlier line: each line needs its own") in errors
    assert (None, "is not UTF-8 text (byte 0xe9)") in errors
    assert any(message.startswith("url: must be the batch's endpoint") for message in messages)
    assert any(message.startswith("body.temperature") for message in messages)
    [unserved] = [line for (custom_id, _), line in errors.items() if custom_id == "m1"]
    assert unserved["response"]["status_code"] == 404
    assert unserved["response"]["body"]["error"]["code"] == "model_not_found"

    listed = await oai.batches.list(limit=100)
    assert created.id in [item.id for item in listed.data]


async def test_a_completions_batch_answers_text_completions(oai, gateway):
    lines = [{"custom_id": f"p{i}", "method": "POST", "url": "/v1/completions",
              "body": {"model": "echo", "prompt": f"user: go on {i}", "max_tokens": 8, "echo": i == 1}}
             for i in range(3)]  # fmt: skip
    uploaded = await oai.files.create(file=("prompts.jsonl", jsonl(lines)), purpose="batch")
    created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/completions", completion_window="24h")
    batch = await finished(oai, created.id)
    assert (batch.endpoint, batch.status, batch.request_counts.completed) == ("/v1/completions", "completed", 3)
    answers = {line["custom_id"]: line["response"]["body"] for line in await lines_of(oai, batch.output_file_id)}
    assert {body["object"] for body in answers.values()} == {"text_completion"}
    # the echo engine answers a raw prompt's last "user:" line, word by word
    assert [answers[f"p{i}"]["choices"][0]["text"] for i in (0, 2)] == ["go on 0", "go on 2"]
    assert answers["p1"]["choices"][0]["text"] == "user: go on 1" + "go on 1"  # echo: the prompt first


async def test_a_tenant_sees_only_its_own_files_and_batches(oai, gateway):
    also = await oai.files.create(file=("also.jsonl", jsonl([chat_line("b", "also")])), purpose="batch")
    uploaded = await oai.files.create(file=("mine.jsonl", jsonl([chat_line("a", "mine")])), purpose="batch")
    created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")  # fmt: skip
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="some-other-key", max_retries=0) as other:
        for call in (other.files.retrieve(uploaded.id), other.files.content(uploaded.id),
                     other.batches.retrieve(created.id), other.batches.cancel(created.id)):  # fmt: skip
            with pytest.raises(openai.NotFoundError):
                await call
        with pytest.raises(openai.BadRequestError) as refused:
            await other.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")  # fmt: skip
        assert refused.value.body["param"] == "input_file_id"
        assert created.id not in [item.id for item in (await other.batches.list()).data]
        assert uploaded.id not in [item.id async for item in other.files.list()]
    batch = await finished(oai, created.id)
    assert batch.status == "completed"
    # the package's list, a page at a time and by purpose (it once had no route: a 405)
    outputs = [item async for item in oai.files.list(purpose="batch_output")]
    assert batch.output_file_id in [item.id for item in outputs] and {item.purpose for item in outputs} == {
        "batch_output"
    }
    first = await oai.files.list(purpose="batch", limit=1)
    assert len(first.data) == 1 and first.has_more
    inputs = [item.id async for item in oai.files.list(purpose="batch", limit=1)]  # the package pages with `after`
    assert {uploaded.id, also.id} <= set(inputs) and len(inputs) == len(set(inputs))
    with pytest.raises(openai.ConflictError):
        await oai.batches.cancel(created.id)
    await oai.files.delete(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        await oai.files.retrieve(uploaded.id)
    assert uploaded.id not in [item.id async for item in oai.files.list()]


async def test_bad_create_bodies_name_their_field(oai):
    with pytest.raises(openai.BadRequestError) as refused:
        await oai.files.create(file=("x.jsonl", jsonl([])), purpose="fine-tune")
    assert refused.value.body["param"] == "purpose"
    uploaded = await oai.files.create(file=("x.jsonl", jsonl([chat_line("a", "x")])), purpose="batch")
    for wrong, param in (({"endpoint": "/v1/embeddings"}, "endpoint"), ({"completion_window": "1d"},
                         "completion_window"), ({"input_file_id": "file-nope"}, "input_file_id")):  # fmt: skip
        body = {"input_file_id": uploaded.id, "endpoint": "/v1/chat/completions", "completion_window": "24h", **wrong}
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.batches.create(**body)
        assert refused.value.body["param"] == param


async def test_a_gateway_with_an_s3_bucket_keeps_its_batch_files_there(start_gateway, s3_server, echo_worker):
    env = {"INFERQ_GATEWAY_FILES_URL": "s3://inferq-files/gateway", **s3_server.env}
    gateway = start_gateway(api_keys=API_KEY, env=env)
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0) as oai:
        lines = [chat_line(f"s{i}", f"in s3 {i}") for i in range(3)]
        uploaded = await oai.files.create(file=("s3.jsonl", jsonl(lines)), purpose="batch")
        created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                           completion_window="24h")  # fmt: skip
        # (the session's gateway, on a local directory, leaves this batch alone: its files are not in its store)
        batch = await finished(oai, created.id)
        answers = await lines_of(oai, batch.output_file_id)
    gateway.stop()
    assert batch.status == "completed" and [line["custom_id"] for line in answers] == ["s0", "s1", "s2"]
    for file_id in (uploaded.id, batch.output_file_id):  # objects in the bucket, as any S3 client sees them
        assert s3_server.object("inferq-files", f"gateway/{file_id}")


async def test_a_tenant_at_its_cap_of_unfinished_batches_gets_a_429_and_keeps_their_input_until_one_ends(
    start_gateway, echo_worker, tmp_path
):
    key = f"batch-cap-{uuid.uuid4().hex}"  # a tenant of its own: its count starts at 0
    gateway = start_gateway(api_keys=key, env={"INFERQ_GATEWAY_TENANT_MAX_BATCHES": "1"})
    release = tmp_path / "release"
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as oai:
        upload = await oai.files.create(file=("cap.jsonl", jsonl([chat_line("a", f"held [wait:{release}]")])),
                                        purpose="batch")  # fmt: skip
        body = {"input_file_id": upload.id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        first = await oai.batches.create(**body)
        with pytest.raises(openai.RateLimitError) as refused:
            await oai.batches.create(**body)
        assert refused.value.body["code"] == "too_many_batches"
        with pytest.raises(openai.ConflictError) as in_use:  # read again by whoever drives the batch next
            await oai.files.delete(upload.id)
        assert in_use.value.body["code"] == "file_in_use"
        release.touch()
        assert (await finished(oai, first.id)).status == "completed"
        second = await oai.batches.create(**body)  # the first ended: room again
        assert (await finished(oai, second.id)).status == "completed"
        assert (await oai.files.delete(upload.id)).deleted  # no batch reads it any more
    gateway.stop()


async def _batch_held_beside_an_answer(oai, inferq, held_lines: int):
    """A batch of one quick line ("done") and `held_lines` that hold, once the held ones run and "done" is
    answered (whether or not the batch has written it yet); returns the batch and the held lines' job ids."""
    lines = [chat_line("done", "quick")] + [chat_line(f"held{i}", f"wait [hold] {i}") for i in range(held_lines)]
    uploaded = await oai.files.create(file=("held.jsonl", jsonl(lines)), purpose="batch")
    created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")  # fmt: skip
    owner = bare_key_tenant(API_KEY)
    held = [idempotent_job_id(owner, line_key(created.id, f"held{i}")) for i in range(held_lines)]
    done = idempotent_job_id(owner, line_key(created.id, "done"))

    async def all_running() -> bool:
        running = all([await inferq.store.is_running(job_id) for job_id in held])
        return running and await inferq.store.record(done) is not None

    await until(all_running, "the held lines never ran")
    return created, held


async def test_cancel_stops_the_lines_in_flight_and_keeps_the_answered_ones(oai, inferq, gateway):
    created, held = await _batch_held_beside_an_answer(oai, inferq, held_lines=4)
    assert (await oai.batches.cancel(created.id)).status in ("cancelling", "cancelled")
    batch = await finished(oai, created.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    assert [line["custom_id"] for line in await lines_of(oai, batch.output_file_id)] == ["done"]
    for job_id in held:
        record = await (await inferq.find_job(job_id)).record()
        assert record.status == "cancelled"
    assert (await oai.batches.cancel(created.id)).status == "cancelled"  # again: the same answer


async def test_a_line_whose_job_ended_before_a_cancel_keeps_its_answer_though_the_batch_had_not_written_it(
    inferq, echo_worker, tmp_path
):
    # The coordinator's own stop, as a cancel runs it, over two lines in flight whose answers it never heard:
    # one whose job has ended (the runner, stopped, had not written it yet) and one whose job holds.
    batch_id, owner = "batch_stopped_beside_an_answer", "tenant-of-the-stop"
    texts = {"ended": "answered in time", "held": "still going [hold]"}
    lines = {
        custom_id: BatchLine(
            custom_id=custom_id,
            index=i,
            url="/v1/chat/completions",
            model="echo",
            messages=[{"role": "user", "content": text}],
        )
        for i, (custom_id, text) in enumerate(texts.items())
    }
    handles = {
        custom_id: await inferq.submit_chat(
            line.messages, "echo", owner=owner, idempotency_key=line_key(batch_id, custom_id)
        )
        for custom_id, line in lines.items()
    }
    await handles["ended"].result(timeout=120)
    await until(lambda: inferq.store.is_running(handles["held"].id), "the held line never ran")
    coordinator = BatchCoordinator(inferq, LocalFileStore(str(tmp_path)), lease_s=15, scan_s=1, window=2)
    # an active batch (an ended one takes no answers), in a store no gateway of the session drives
    await inferq.store.batches.add_batch(batch_id, owner, 0, {"id": batch_id, "status": "cancelling"})
    await coordinator._stop_jobs(batch_id, {"owner": owner}, list(lines.values()))
    answered = {custom_id: json.loads(line) async for custom_id, line in inferq.store.batches.lines(batch_id, True)}
    assert [line async for line in inferq.store.batches.lines(batch_id, False)] == []
    await inferq.store.batches.retire_batch(batch_id)
    assert list(answered) == ["ended"]
    assert answered["ended"]["response"]["body"]["choices"][0]["message"]["content"] == "answered in time"
    with pytest.raises(JobCancelled):
        await handles["held"].result(timeout=120)


async def test_a_gateway_taking_over_a_batch_cancelled_while_nobody_drove_it_stops_its_jobs(
    start_gateway, echo_worker, inferq
):
    env = {"INFERQ_GATEWAY_BATCH_LEASE_S": "2", "INFERQ_GATEWAY_BATCH_SCAN_S": "0.2"}  # a dead driver's lease lapses
    first = start_gateway(api_keys=API_KEY, env=env)
    async with openai.AsyncOpenAI(base_url=f"{first.url}/v1", api_key=API_KEY, max_retries=0) as oai:
        created, held = await _batch_held_beside_an_answer(oai, inferq, held_lines=2)
    first.kill()
    # the cancel route's own move, made while no gateway drives the batch
    assert await inferq.store.batches.transition(created.id, "cancelling", int(time.time()), ("in_progress",))
    second = start_gateway(api_keys=API_KEY, env=env)
    async with openai.AsyncOpenAI(base_url=f"{second.url}/v1", api_key=API_KEY, max_retries=0) as oai:
        batch = await finished(oai, created.id)
        answered = [line["custom_id"] for line in await lines_of(oai, batch.output_file_id)]
    second.stop()
    assert batch.status == "cancelled" and answered == ["done"]
    for job_id in held:  # stopped by the gateway that took the batch over, not left running
        handle = await inferq.find_job(job_id)
        with pytest.raises(JobCancelled):
            await handle.result(timeout=120)


async def test_a_batch_whose_driver_died_between_ending_it_and_retiring_it_is_retired(oai, inferq, gateway, redis_url):
    uploaded = await oai.files.create(file=("one.jsonl", jsonl([chat_line("only", "one line")])), purpose="batch")
    created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")  # fmt: skip
    ended = await finished(oai, created.id)
    assert ended.status == "completed"
    # what a gateway killed just after the status moved leaves: the batch still among the active ones
    redis.Redis.from_url(redis_url).zadd(names.ACTIVE_BATCHES_KEY, {created.id: int(time.time())})

    async def retired() -> bool:
        return created.id not in await inferq.store.batches.active_batches()

    await until(retired, "the ended batch stayed active (and in inferq status) for ever")
    again = await oai.batches.retrieve(created.id)
    assert (again.status, again.request_counts.completed) == ("completed", 1)
    assert [line["custom_id"] for line in await lines_of(oai, again.output_file_id)] == ["only"]


async def test_a_batch_past_its_window_expires_and_its_unanswered_lines_say_so(oai, inferq, gateway, redis_url):
    lines = [chat_line("quick", "in time")] + [chat_line(f"late{i}", f"too slow [hold] {i}") for i in range(2)]
    uploaded = await oai.files.create(file=("late.jsonl", jsonl(lines)), purpose="batch")
    created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                       completion_window="1h")  # fmt: skip
    late = [idempotent_job_id(bare_key_tenant(API_KEY), line_key(created.id, f"late{i}")) for i in range(2)]
    quick = idempotent_job_id(bare_key_tenant(API_KEY), line_key(created.id, "quick"))

    async def held_lines_run() -> bool:  # and "quick" answered in time
        running = all([await inferq.store.is_running(job_id) for job_id in late])
        return running and await inferq.store.record(quick) is not None

    await until(held_lines_run, "the held lines never ran")
    # the window has passed (an hour is long to wait for: its end is moved instead)
    redis.Redis.from_url(redis_url).hset(names.batch_key(created.id), "expires_at", "1")
    batch = await finished(oai, created.id)
    assert (batch.status, batch.request_counts.completed, batch.request_counts.failed) == ("expired", 1, 2)
    assert batch.expired_at and [line["custom_id"] for line in await lines_of(oai, batch.output_file_id)] == ["quick"]
    expired = await lines_of(oai, batch.error_file_id)
    assert sorted(line["custom_id"] for line in expired) == ["late0", "late1"]
    assert {line["error"]["code"] for line in expired} == {"batch_expired"}
    for job_id in late:  # and their jobs stopped
        assert (await (await inferq.find_job(job_id)).record()).status == "cancelled"


async def test_a_2000_line_batch_outlives_a_sigkilled_worker_and_a_sigkilled_gateway(
    start_gateway, start_worker, redis_url
):
    # Two workers of a model of its own, at a pace that keeps the batch running for seconds, whatever the machine:
    # five paced steps a line (four words and the end) at 40 a second, the 1,800 lines left after the first 200
    # take 7 s at the least on 32 slots, 14 s on the 16 left after the kill.
    doomed = start_worker("echo", "api-batch-echo", engine="echo", concurrency=16,
                          engine_args={"tokens_per_s": 40})  # fmt: skip
    survivor = start_worker("echo", "api-batch-echo", engine="echo", concurrency=16, engine_args={"tokens_per_s": 40})
    # Every gateway shares the session's files; a dead gateway's batch is taken over once its 2-second lease lapses.
    env = {"INFERQ_GATEWAY_BATCH_LEASE_S": "2",
           "INFERQ_GATEWAY_BATCH_SCAN_S": "0.2", "INFERQ_NO_WORKER_GRACE_S": "60"}  # fmt: skip
    first = start_gateway(api_keys=API_KEY, env=env)
    lines = [chat_line(f"line-{i}", f"line {i} of 2000", model="api-batch-echo") for i in range(2000)]
    async with openai.AsyncOpenAI(base_url=f"{first.url}/v1", api_key=API_KEY, max_retries=0) as oai:
        uploaded = await oai.files.create(file=("big.jsonl", jsonl(lines)), purpose="batch")
        created = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                           completion_window="24h")  # fmt: skip

        async def some_done() -> bool:
            counts = (await oai.batches.retrieve(created.id)).request_counts
            assert counts.failed == 0, "lines failed before any fault"
            return counts.completed >= 200

        await until(some_done, "the batch never got going")
    doomed.kill()
    first.kill()
    at_the_kill = redis.Redis.from_url(redis_url).hlen(names.batch_lines_key(created.id, True))
    # `inferq status` shows it with its progress; asked now, while no gateway drives it, since a cold start of the
    # command on a loaded machine can take as long as the rest of the batch would
    running = _status_of_batch(redis_url, created.id)
    assert (running["status"], running["total"], running["owner"]) == ("in_progress", 2000, bare_key_tenant(API_KEY))
    assert running["completed"] >= 200
    second = start_gateway(api_keys=API_KEY, env=env)
    async with openai.AsyncOpenAI(base_url=f"{second.url}/v1", api_key=API_KEY, max_retries=0) as oai:
        batch = await finished(oai, created.id)
        answers = await lines_of(oai, batch.output_file_id)
        errors = await lines_of(oai, batch.error_file_id)
    second.stop()
    survivor.stop()
    assert at_the_kill < 2000, "the batch had ended before the faults: they proved nothing"
    assert (batch.status, batch.request_counts.completed, batch.request_counts.failed, errors) == (
        "completed",
        2000,
        0,
        [],
    )
    assert sorted(line["custom_id"] for line in answers) == sorted(f"line-{i}" for i in range(2000))
    owner = bare_key_tenant(API_KEY)
    for line in answers:
        i = int(line["custom_id"].removeprefix("line-"))
        assert line["response"]["body"]["choices"][0]["message"]["content"] == f"line {i} of 2000"
        assert line["response"]["request_id"] == idempotent_job_id(owner, line_key(created.id, line["custom_id"]))


def _status_of_batch(redis_url: str, batch_id: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "cli.main", "status", "--json"], capture_output=True, text=True,
                            env={**os.environ, "INFERQ_REDIS_URL": redis_url}, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return next(batch for batch in json.loads(result.stdout)["batches"] if batch["id"] == batch_id)


# Creating a batch under an `Idempotency-Key`: a retry (even one racing the first try) is the same batch, never a
# second write over it; the key used for another body is a 400 naming `idempotency_key`, as on the other routes.


async def test_a_create_retried_under_its_key_is_the_same_batch_even_after_it_ended(oai):
    uploaded = await oai.files.create(file=("same.jsonl", jsonl([chat_line("a", "once")])), purpose="batch")
    key = {"Idempotency-Key": f"create-{uuid.uuid4().hex}"}
    body = {"input_file_id": uploaded.id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    first, *retries = await asyncio.gather(*(oai.batches.create(**body, extra_headers=key) for _ in range(4)))
    assert {retry.id for retry in retries} == {first.id}
    ended = await finished(oai, first.id)
    again = await oai.batches.create(**body, extra_headers=key)
    assert (again.id, again.status, again.request_counts.completed) == (first.id, ended.status, 1)
    assert ended.status == "completed"


async def test_a_key_used_again_for_another_body_is_refused_by_name(oai):
    uploads = [await oai.files.create(file=(f"{name}.jsonl", jsonl([chat_line(name, "x")])), purpose="batch")
               for name in ("first", "second")]  # fmt: skip
    key = {"Idempotency-Key": f"create-{uuid.uuid4().hex}"}
    body = {"endpoint": "/v1/chat/completions", "completion_window": "24h"}
    # two creates racing under one key, for two files: one makes the batch, the other is told why not
    outcomes = await asyncio.gather(
        *(oai.batches.create(input_file_id=upload.id, **body, extra_headers=key) for upload in uploads),
        return_exceptions=True,
    )
    [created] = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    [refused] = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert isinstance(refused, openai.BadRequestError) and refused.body["param"] == "idempotency_key"
    assert (await oai.batches.retrieve(created.id)).input_file_id == created.input_file_id
    with pytest.raises(openai.BadRequestError) as metadata_differs:
        await oai.batches.create(input_file_id=created.input_file_id, **body, metadata={"run": "2"}, extra_headers=key)
    assert metadata_differs.value.body["param"] == "idempotency_key"
    assert (await finished(oai, created.id)).status == "completed"

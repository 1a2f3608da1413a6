"""The Responses API through the official `openai` package: background responses, cancel, and a stream
resumed with `starting_after` from another gateway process after the first one was killed."""

import asyncio

import openai
import pytest
import redis.asyncio

from tasks import names
from tasks.schemas import RestartEvent
from tests.gateway.conftest import cancel_response, leave_while_waiting
from tests.waiting import until

TERMINAL = ("response.completed", "response.incomplete", "response.failed")


async def _until_ended(client, response_id):
    while (response := await client.responses.retrieve(response_id)).status in ("queued", "in_progress"):
        await asyncio.sleep(0.05)
    return response


async def test_a_background_response_is_queued_then_completed(oai):
    created = await oai.responses.create(model="echo", input="one two three", background=True)
    assert created.status == "queued" and created.background is True and created.id.startswith("resp_")
    done = await _until_ended(oai, created.id)
    assert (done.status, done.output_text) == ("completed", "one two three")
    assert (done.usage.input_tokens, done.usage.output_tokens) == (5, 4)


async def test_a_foreground_response_with_instructions_and_an_output_cap(oai):
    response = await oai.responses.create(model="echo", input="a b c d", instructions="terse", max_output_tokens=2)
    assert (response.status, response.output_text) == ("incomplete", "a b")
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.input_tokens == 8  # "system: terse" + "user: a b c d" + "assistant:"


async def test_a_response_whose_job_failed_says_so_without_the_workers_exception(oai):
    created = await oai.responses.create(model="echo", input="fine until [fail]", background=True)
    done = await _until_ended(oai, created.id)
    assert (done.status, done.error.code) == ("failed", "server_error")
    assert created.id.removeprefix("resp_") in done.error.message and "RuntimeError" not in done.error.message


async def test_text_may_leave_its_format_out(oai):
    response = await oai.responses.create(model="echo", input="a b", text={"verbosity": "medium"})
    assert (response.output_text, response.text.format.type) == ("a b", "text")


async def test_a_resumed_stream_whose_log_expired_still_ends_with_the_whole_response(oai, redis_url):
    created = await oai.responses.create(model="echo", input="one two three", background=True)
    await _until_ended(oai, created.id)
    async with redis.asyncio.Redis.from_url(redis_url) as r:
        await r.delete(names.events_key(created.id.removeprefix("resp_")))  # as `stream_ttl_s` would
    events = [event async for event in await oai.responses.retrieve(created.id, stream=True, starting_after=50)]
    assert [event.type for event in events] == ["response.completed"] and events[0].sequence_number == 51
    assert events[0].response.output_text == "one two three"


async def test_a_stream_whose_job_vanished_ends_with_an_error_event(oai, redis_url, release):
    wait, let_go = release()
    stream = await oai.responses.create(model="echo", input=f"first {wait} never", stream=True)
    seen = []
    with pytest.raises(openai.APIError) as ended:  # the package raises the stream's `error` event
        async for event in stream:
            seen.append(event)
            if event.type == "response.output_text.delta":
                async with redis.asyncio.Redis.from_url(redis_url) as r:  # as a Redis restart without persistence
                    await r.delete(names.job_key(seen[0].response.id.removeprefix("resp_")))
    let_go()
    assert "is gone from Redis" in ended.value.message and ended.value.body["code"] == "job_lost"


async def test_cancel_stops_a_background_response_and_keeps_its_partial_text(oai):
    created = await oai.responses.create(model="echo", input="kept [hold] never", background=True)
    stream = await oai.responses.retrieve(created.id, stream=True)
    async for event in stream:
        if event.type == "response.output_text.delta":
            break  # the job is surely running now
    await stream.close()
    cancelled = await cancel_response(oai, created.id)
    assert (cancelled.status, cancelled.output_text) == ("cancelled", "kept")


async def test_a_streamed_response_numbers_its_events_and_ends_completed(oai):
    stream = await oai.responses.create(model="echo", input="x y", stream=True)
    events = [event async for event in stream]
    assert [event.type for event in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    assert [event.sequence_number for event in events] == list(range(len(events)))  # 0, 1, 2, ... no gap
    assert events[-1].response.output_text == "x y"


async def test_a_client_that_leaves_a_foreground_response_cancels_its_job(gateway, inferq, redis_url, tmp_path):
    await leave_while_waiting(
        gateway,
        inferq,
        redis_url,
        "/v1/responses",
        lambda text: {"model": "echo", "input": text},
        tmp_path,
        job_streams=True,
    )


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"store": False, "background": True}, "store"),  # a background response is retrieved: it must be kept
        ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
        ({"previous_response_id": "resp_x"}, "previous_response_id"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input.0.content.0.image_url",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input.0.content.0"),
        ({"include": ["reasoning.encrypted_content"]}, "include"),
        ({"truncation": "auto"}, "truncation"),
        ({"text": {"verbosity": "low"}}, "text.verbosity"),
        (
            {"input": [{"type": "function_call", "call_id": "c" * 129, "name": "f", "arguments": "{}"}]},
            "input.0.call_id",
        ),
    ],
)
async def test_what_cannot_be_honoured_is_a_400_naming_the_field(oai, options, param):
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.responses.create(**{"model": "echo", "input": "x", **options})
    assert caught.value.body["param"] == param


async def test_an_unstored_response_is_answered_then_found_by_nobody(oai):
    # vLLM's load generator sends store: false (--backend openai-responses), and an empty reasoning object is null
    response = await oai.responses.create(model="echo", input="a b", store=False, reasoning={"effort": None})
    assert (response.output_text, response.store) == ("a b", False)
    with pytest.raises(openai.NotFoundError):
        await oai.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        await oai.responses.cancel(response.id)


async def test_an_unknown_response_is_a_404(oai):
    with pytest.raises(openai.NotFoundError):
        await oai.responses.retrieve("resp_00000000000000000000000000000000")


async def test_a_stream_resumes_on_another_gateway_after_the_first_was_killed(start_gateway, echo_worker, release):
    wait, let_go = release()
    first = start_gateway()  # no keys: open, and it says so
    assert "the gateway is open" in first.log_path.read_text()
    before_kill = []
    async with openai.AsyncOpenAI(base_url=f"{first.url}/v1", api_key="none", max_retries=0) as client:
        stream = await client.responses.create(
            model="echo", input=f"one two {wait} three four", background=True, stream=True
        )
        async for event in stream:
            before_kill.append(event)
            if event.type == "response.output_text.delta" and event.delta == " two":
                break  # the job now waits for the test: it cannot end while this gateway dies
        first.kill()
    response_id = before_kill[0].response.id
    last_seen = before_kill[-1].sequence_number

    second = start_gateway()
    let_go()
    async with openai.AsyncOpenAI(base_url=f"{second.url}/v1", api_key="none", max_retries=0) as client:
        resumed = [event async for event in await client.responses.retrieve(response_id, stream=True,
                                                                            starting_after=last_seen)]  # fmt: skip
        replay = [event async for event in await client.responses.retrieve(response_id, stream=True)]

    def key(event):
        return event.sequence_number, event.type, getattr(event, "delta", None)

    assert [key(e) for e in before_kill + resumed] == [key(e) for e in replay]  # every event once, in order
    assert resumed[-1].type == "response.completed"
    deltas = "".join(e.delta for e in before_kill + resumed if e.type == "response.output_text.delta")
    assert deltas == resumed[-1].response.output_text == f"one two {wait} three four"


async def test_a_stream_resumed_after_its_job_restarted_elsewhere_says_its_text_is_void(
    oai, inferq, start_worker, release
):
    # The new attempt's events were numbered as the first's: resumed after a number of the first, the client got
    # the new attempt's later text spliced onto the old attempt's start, with no word of the restart.
    wait, let_go = release()
    doomed = start_worker("echo", "restart-echo", engine="echo")
    stream = await oai.responses.create(model="restart-echo", input=f"one two {wait} three", background=True,
                                        stream=True)  # fmt: skip
    seen = []
    async for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta" and event.delta == " two":
            break  # the first attempt waits for the test
    await stream.close()
    doomed.kill()  # its lease lapses, and the job runs again on the survivor
    survivor = start_worker("echo", "restart-echo", engine="echo")
    job_id = seen[0].response.id.removeprefix("resp_")

    async def restarted() -> bool:
        return any(isinstance(event, RestartEvent) for event in await inferq.store.events_after(job_id, 0))

    await until(restarted, "the job never restarted")
    let_go()
    resumed = await oai.responses.retrieve(seen[0].response.id, stream=True, starting_after=seen[-1].sequence_number)
    with pytest.raises(openai.APIError) as ended:  # the package raises the stream's `error` event
        async for event in resumed:
            assert event.type != "response.output_text.delta", f"spliced onto the void attempt: {event}"
    assert ended.value.body["code"] == "job_restarted"
    done = await _until_ended(oai, seen[0].response.id)
    assert (done.status, done.output_text) == ("completed", f"one two {wait} three")
    fresh = [event async for event in await oai.responses.retrieve(done.id, stream=True)]  # the new attempt whole
    assert "".join(e.delta for e in fresh if e.type == "response.output_text.delta") == done.output_text
    survivor.stop()

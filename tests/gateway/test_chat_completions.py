"""`/v1/models`, `/v1/chat/completions` and `/v1/score` through the official `openai` package, unmodified,
against a gateway process and real echo workers. Jobs that must still run when the test acts are built
so (`[hold]`, `[wait:PATH]`): nothing bets on speed."""

import httpx
import openai
import pytest

from tasks.schemas import JobStatus
from tests.gateway.conftest import API_KEY, leave_while_waiting


def ask(text):
    return [{"role": "user", "content": text}]


async def test_models_lists_what_live_workers_serve(oai):
    models = {model.id: model for model in (await oai.models.list()).data}
    assert {"echo", "echo-rm"} <= set(models)
    assert models["echo"].owned_by == "inferq" and models["echo"].inferq["can_generate"] is True


async def test_chat_returns_the_answer_and_usage(oai):
    completion = await oai.chat.completions.create(model="echo", messages=ask("the capital of France is Paris"))
    [choice] = completion.choices
    assert (choice.message.role, choice.message.content) == ("assistant", "the capital of France is Paris")
    assert choice.finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (8, 7)
    assert completion.usage.total_tokens == 15 and completion.id.startswith("chatcmpl-")


async def test_a_system_message_and_text_parts_reach_the_model(oai, inferq):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}]},
    ]
    completion = await oai.chat.completions.create(model="echo", messages=messages)
    assert completion.choices[0].message.content == "one two"
    assert completion.usage.prompt_tokens == 7  # "system: be brief" + "user: one two" + "assistant:"


async def test_stream_sends_role_first_then_deltas_then_the_finish_reason_and_usage(oai):
    stream = await oai.chat.completions.create(
        model="echo", messages=ask("one two three"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert deltas[0].role == "assistant"
    assert [d.content for d in deltas[1:] if d.content] == ["one", " two", " three"]  # one delta a token
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4  # usage comes last


async def test_a_stream_without_include_usage_has_no_usage_chunk(oai):
    stream = await oai.chat.completions.create(
        model="echo", messages=ask("a b"), stream=True, stream_options={"include_obfuscation": False}
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)


async def test_n_2_streams_both_choices_each_with_its_own_finish_reason(oai):
    stream = await oai.chat.completions.create(model="echo", messages=ask("x y z"), n=2, max_tokens=2, stream=True)
    texts, roles, finishes = {0: "", 1: ""}, {}, {}
    async for chunk in stream:
        [choice] = chunk.choices
        if choice.delta.role:
            assert choice.index not in texts or texts[choice.index] == ""  # the role comes before any text
            roles[choice.index] = choice.delta.role
        texts[choice.index] += choice.delta.content or ""
        if choice.finish_reason:
            finishes[choice.index] = choice.finish_reason
    assert texts == {0: "x y", 1: "x y"} and roles == {0: "assistant", 1: "assistant"}
    assert finishes == {0: "length", 1: "length"}  # the real reason: max_tokens cut both


async def test_stop_strings_end_the_answer_with_finish_reason_stop(oai):
    completion = await oai.chat.completions.create(model="echo", messages=ask("one two three four"), stop=["three"])
    assert (completion.choices[0].message.content, completion.choices[0].finish_reason) == ("one two ", "stop")


async def test_max_tokens_and_max_completion_tokens_end_with_length(oai):
    for limit in ({"max_tokens": 2}, {"max_completion_tokens": 2}):
        completion = await oai.chat.completions.create(model="echo", messages=ask("one two three"), **limit)
        assert (completion.choices[0].message.content, completion.choices[0].finish_reason) == ("one two", "length")


async def test_priority_and_deadline_travel_as_extensions(oai):
    completion = await oai.chat.completions.create(
        model="echo", messages=ask("urgent"), extra_body={"priority": 0, "deadline_s": 60}
    )
    assert completion.choices[0].message.content == "urgent"


async def test_a_client_that_disconnects_cancels_its_job_in_the_engine(oai, inferq):
    stream = await oai.chat.completions.create(model="echo", messages=ask("first [hold] never"), stream=True)
    chunks = aiter(stream)
    while not (chunk := await anext(chunks)).choices[0].delta.content:
        pass
    job_id = chunk.id.removeprefix("chatcmpl-")
    await stream.close()
    handle = await inferq.find_job(job_id)
    [response] = await _ended_record_responses(handle)
    assert (response.response_text, response.finish_reason) == ("first", "abort")


async def test_a_client_that_leaves_while_waiting_for_a_whole_answer_cancels_its_job(
    gateway, inferq, redis_url, tmp_path
):
    await leave_while_waiting(
        gateway,
        inferq,
        redis_url,
        "/v1/chat/completions",
        lambda text: {"model": "echo", "messages": ask(text)},
        tmp_path,
        job_streams=False,
    )


async def _ended_record_responses(handle):
    async for _ in handle.events(timeout=60):
        pass
    record = await handle.record()
    assert record.status == JobStatus.CANCELLED
    return record.responses


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"temperature": -1}, "temperature"),
        # the echo engine has no logits: what works on them it refuses by name (a real model's engine does not)
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 1.0}, "frequency_penalty"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tool_choice": "required"}, "tool_choice"),  # and no tools to choose from
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
        ({"logit_bias": {"the": 5}}, "logit_bias"),
        ({"logit_bias": {"\u00b2": 5}}, "logit_bias"),  # a digit to str.isdigit, not to int(): it was a 500
        ({"messages": [{"role": "user", "content": "x", "name": "has space"}]}, "messages.0.name"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools.0.function.name"),
        ({"n": 1000}, "n"),
        ({"extra_body": {"tempreature": 0.5}}, "tempreature"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages.0.content.0.image_url",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages.0.content.0",
        ),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"max_tokens": 3, "max_completion_tokens": 4}, "max_completion_tokens"),
        ({"extra_body": {"priority": 12}}, "priority"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    {"role": "tool", "tool_call_id": "", "content": "y"},
                ]
            },
            "messages.1.tool_calls.0.id",
        ),  # fmt: skip
        ({"messages": [{"role": "user", "content": "x", "reasoning_content": "y"}]}, "messages.0.reasoning_content"),
    ],
)
async def test_what_cannot_be_honoured_is_a_400_naming_the_field(oai, options, param):
    options = {"model": "echo", "messages": ask("x"), **options}
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(**options)
    assert caught.value.status_code == 400 and caught.value.body["param"] == param


async def test_neutral_values_of_unsupported_parameters_are_accepted(oai):
    completion = await oai.chat.completions.create(
        model="echo", messages=ask("fine"), presence_penalty=0, frequency_penalty=0, logprobs=False, tools=[],
        extra_body={"top_k": -1},  # vLLM's "no top-k"
    )  # fmt: skip
    assert completion.choices[0].message.content == "fine"


async def test_a_participant_name_is_taken(oai):
    # LangGraph's agents name every turn; templates that write names get them (tests/engines/test_prompt.py)
    messages = [{"role": "user", "content": "hi there", "name": "alice"}]
    completion = await oai.chat.completions.create(model="echo", messages=messages)
    assert completion.choices[0].message.content == "hi there"


async def test_a_bad_api_key_is_a_401(gateway):
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.models.list()
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"


async def test_an_unknown_model_is_a_404(oai):
    with pytest.raises(openai.NotFoundError) as caught:
        await oai.chat.completions.create(model="ghost", messages=ask("x"))
    assert caught.value.body["param"] == "model" and "echo" in caught.value.message


async def test_a_passed_deadline_is_a_504(oai):
    with pytest.raises(openai.InternalServerError) as caught:
        await oai.chat.completions.create(model="echo", messages=ask("[hold]"), extra_body={"deadline_s": 0.5})
    assert caught.value.status_code == 504 and caught.value.code == "deadline_exceeded"


async def test_a_full_queue_is_a_429(oai, inferq, start_worker):
    capped = start_worker("echo", "gw-capped", engine="echo", concurrency=1, env={"INFERQ_MAX_QUEUED": "1"})
    busy = await inferq.submit_chat(ask("busy [hold]"), "gw-capped")
    assert await anext(busy.stream()) == "busy"  # the one slot is taken
    waiting = await inferq.submit_chat(ask("waiting"), "gw-capped")  # and the queue holds its cap
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.chat.completions.create(model="gw-capped", messages=ask("one too many"))
    assert caught.value.code == "queue_full" and caught.value.body["param"] == "model"
    await busy.cancel()
    assert (await waiting.result(timeout=60)).status == JobStatus.SUCCEEDED
    capped.stop()


async def test_a_job_over_its_time_limit_is_a_504(oai):
    with pytest.raises(openai.InternalServerError) as caught:
        await oai.chat.completions.create(model="echo", messages=ask("[hold]"), extra_body={"max_runtime_s": 0.5})
    assert caught.value.status_code == 504 and caught.value.code == "time_limit_exceeded"
    stream = await oai.chat.completions.create(
        model="echo", messages=ask("first [hold]"), stream=True, extra_body={"max_runtime_s": 0.5}
    )
    chunks = []
    with pytest.raises(openai.APIError) as streamed:
        async for chunk in stream:
            chunks.append(chunk)
    assert streamed.value.body["code"] == "time_limit_exceeded"
    assert "abort" not in {c.choices[0].finish_reason for c in chunks if c.choices}  # OpenAI has no such finish


async def test_a_job_that_fails_inside_the_worker_is_a_500_naming_the_job_not_the_exception(oai):
    with pytest.raises(openai.InternalServerError) as caught:
        await oai.chat.completions.create(model="echo", messages=ask("fine until [fail]"))
    assert caught.value.status_code == 500 and caught.value.code == "job_failed"
    assert "job " in caught.value.message and "RuntimeError" not in caught.value.message
    stream = await oai.chat.completions.create(model="echo", messages=ask("fine until [fail]"), stream=True)
    with pytest.raises(openai.APIError) as streamed:
        _ = [chunk async for chunk in stream]
    assert "the server had an error" in streamed.value.message and "directive" not in streamed.value.message


async def test_scores_from_a_reward_model(gateway):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(
        base_url=gateway.url, headers=headers, timeout=120
    ) as http:  # a bound for failure only
        reply = await http.post("/v1/score", json={"model": "echo-rm", "messages": ["two words", "and three words"]})
        assert reply.status_code == 200 and reply.json()["scores"] == [2.0, 3.0]
        chat = [{"role": "user", "content": "two words"}, {"role": "assistant", "content": "three more words"}]
        rendered = await http.post("/v1/score", json={"model": "echo-rm", "conversations": [chat]})
        # the worker renders it with the model's chat template: "user: two words\nassistant: three more words"
        assert rendered.status_code == 200 and rendered.json()["scores"] == [7.0]
        both = await http.post("/v1/score", json={"model": "echo-rm", "messages": ["x"], "conversations": [chat]})
        assert both.status_code == 400 and "one of them" in both.json()["error"]["message"]
        bad_role = await http.post("/v1/score", json={"model": "echo-rm", "conversations": [[{"role": "robot"}]]})
        assert bad_role.status_code == 400 and bad_role.json()["error"]["param"] == "conversations.0.0.role"

"""What real clients send, through the official `openai` package, unmodified, against a gateway process and
real workers: tools (forced on SmolLM2, streamed in pieces from a scripted echo worker, results fed back),
JSON-schema answers, logprobs, completions, a reasoning model's thoughts split from its answer, the
request vLLM's own load generator sends, and the same on SmolLM2 served by vLLM."""

import json

import httpx
import openai
import pytest

from tests.gateway.conftest import API_KEY

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}
WEATHER_CALL = '<tool_call>{"name": "get_weather", "arguments": {"location": "San Francisco, CA"}}</tool_call>'
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def ask(text):
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def caller(start_worker):
    """An echo worker that always answers with a Hermes-style call of get_weather."""
    return start_worker("echo", "caller", engine="echo", engine_args={"answer": WEATHER_CALL})


@pytest.fixture(scope="module")
def thinker(start_worker):
    return start_worker(
        "echo",
        "thinker",
        engine="echo",
        engine_args={"answer": "<think> sunny it is </think> It is sunny.", "reasoning": "think"},
    )


async def test_a_forced_tool_call_on_smollm2_is_a_call_whose_arguments_fit_the_schema(oai, smollm2_worker):
    for choice, finish in (
        ({"type": "function", "function": {"name": "get_weather"}}, "stop"),
        ("required", "tool_calls"),
    ):
        completion = await oai.chat.completions.create(
            model="smollm2", messages=ask("What is the weather in Paris?"), tools=[WEATHER_TOOL], tool_choice=choice,
            max_tokens=64, temperature=0,  # greedy: a sampled "required" answer may call again until max_tokens
        )  # fmt: skip
        [choice_] = completion.choices
        assert choice_.finish_reason == finish and choice_.message.content is None
        call = choice_.message.tool_calls[0]
        assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
        assert isinstance(json.loads(call.function.arguments)["location"], str)


async def test_a_streamed_tool_call_arrives_in_pieces_that_add_up_to_the_call(oai, caller):
    stream = await oai.chat.completions.create(
        model="caller", messages=ask("Weather in SF?"), tools=[WEATHER_TOOL], stream=True
    )
    pieces, finish = [], None
    async for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or ():
            pieces.append(delta)
        finish = chunk.choices[0].finish_reason or finish
    first, rest = pieces[0], pieces[1:]
    assert (first.index, first.type, first.function.name) == (0, "function", "get_weather") and first.id
    assert rest and all(piece.id is None and piece.function.name is None for piece in rest)  # arguments, in pieces
    arguments = "".join(piece.function.arguments for piece in pieces)
    assert json.loads(arguments) == {"location": "San Francisco, CA"} and finish == "tool_calls"


async def test_a_streamed_forced_call_on_smollm2_streams_its_arguments(oai, smollm2_worker):
    stream = await oai.chat.completions.create(
        model="smollm2", messages=ask("What is the weather in Paris?"), tools=[WEATHER_TOOL], tool_choice="required",
        stream=True, max_tokens=64, temperature=0,
    )  # fmt: skip
    pieces = [
        delta async for chunk in stream for delta in (chunk.choices[0].delta.tool_calls or () if chunk.choices else ())
    ]
    first_call = [piece for piece in pieces if piece.index == 0]  # "required" may call it more than once
    assert first_call[0].function.name == "get_weather" and len(first_call) > 2
    assert "location" in json.loads("".join(piece.function.arguments for piece in first_call))


async def test_tool_results_fed_back_reach_the_model(oai, smollm2_worker):
    messages = [
        *ask("What is the weather in Paris?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 degrees."},
    ]
    completion = await oai.chat.completions.create(
        model="smollm2", messages=messages, tools=[WEATHER_TOOL], max_tokens=24
    )
    assert completion.choices[0].message.content and completion.usage.prompt_tokens > 60  # the call and result went in


async def test_a_json_schema_answer_on_smollm2_parses_and_fits_the_schema(oai, smollm2_worker):
    completion = await oai.chat.completions.create(
        model="smollm2", messages=ask("Give me a person with a name and an age."), max_tokens=64, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
    )  # fmt: skip
    person = json.loads(completion.choices[0].message.content)
    assert set(person) == {"name", "age"} and isinstance(person["age"], int)
    obj = await oai.chat.completions.create(
        model="smollm2",
        messages=ask('Reply with this JSON object: {"ok": true}'),
        max_tokens=64,
        temperature=0,
        response_format={"type": "json_object"},
    )
    assert obj.choices[0].finish_reason == "stop"  # greedy: the same closed object every run
    assert isinstance(json.loads(obj.choices[0].message.content), dict)


async def test_logprobs_on_smollm2_come_one_per_token_streamed_or_not(oai, smollm2_worker):
    completion = await oai.chat.completions.create(
        model="smollm2", messages=ask("Hi"), max_tokens=6, temperature=0, logprobs=True, top_logprobs=3
    )
    content = completion.choices[0].logprobs.content
    assert len(content) == completion.usage.completion_tokens
    assert all(len(entry.top_logprobs) == 3 and entry.logprob <= 0 and entry.bytes for entry in content)
    stream = await oai.chat.completions.create(
        model="smollm2", messages=ask("Hi"), max_tokens=6, temperature=0, logprobs=True, top_logprobs=3, stream=True
    )
    streamed = [
        entry
        async for chunk in stream
        if chunk.choices and chunk.choices[0].logprobs
        for entry in chunk.choices[0].logprobs.content
    ]
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in content]


async def test_a_completion_continues_a_raw_prompt_on_smollm2(oai, smollm2_worker):
    completion = await oai.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=2
    )
    [choice] = completion.choices
    assert choice.text and choice.finish_reason == "length" and completion.object == "text_completion"
    assert "".join(choice.logprobs.tokens) == choice.text and len(choice.logprobs.top_logprobs[0]) == 2
    echoed = await oai.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=4, temperature=0, echo=True
    )
    assert echoed.choices[0].text == "The capital of France is" + choice.text
    stream = await oai.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=4, temperature=0, stream=True
    )
    assert "".join([chunk.choices[0].text async for chunk in stream if chunk.choices]) == choice.text


async def test_ignore_eos_and_min_tokens_fix_the_answers_length(oai, smollm2_worker):
    fixed = await oai.chat.completions.create(
        model="smollm2", messages=ask("Hi"), max_tokens=40, temperature=0, extra_body={"ignore_eos": True}
    )
    assert (fixed.usage.completion_tokens, fixed.choices[0].finish_reason) == (40, "length")
    long_enough = await oai.chat.completions.create(
        model="smollm2", messages=ask("Hi"), max_tokens=60, temperature=0, extra_body={"min_tokens": 30}
    )
    assert long_enough.usage.completion_tokens >= 30


async def test_a_reasoning_models_thoughts_are_split_from_its_answer(oai, thinker):
    completion = await oai.chat.completions.create(model="thinker", messages=ask("Weather?"))
    message = completion.choices[0].message
    assert (message.content, message.model_extra["reasoning_content"]) == ("It is sunny.", "sunny it is")
    stream = await oai.chat.completions.create(model="thinker", messages=ask("Weather?"), stream=True)
    thoughts, answer = "", ""
    async for chunk in stream:
        delta = chunk.choices[0].delta
        thoughts += (delta.model_extra or {}).get("reasoning_content") or ""
        answer += delta.content or ""
    assert (thoughts, answer) == ("sunny it is", "It is sunny.")
    response = await oai.responses.create(model="thinker", input="Weather?")
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output_text == "It is sunny."
    # Streamed, the thoughts are the events the package types (ResponseReasoningTextDeltaEvent)
    events = [event async for event in await oai.responses.create(model="thinker", input="Weather?", stream=True)]
    deltas = [e for e in events if isinstance(e, openai.types.responses.ResponseReasoningTextDeltaEvent)]
    [done] = [e for e in events if isinstance(e, openai.types.responses.ResponseReasoningTextDoneEvent)]
    assert "".join(d.delta for d in deltas) == done.text == "sunny it is"
    # The answer sent back as history, thoughts and all, as the package serialises it: they are dropped.
    again = await oai.chat.completions.create(model="thinker", messages=[*ask("Weather?"), message, *ask("And?")])
    assert again.choices[0].message.content == "It is sunny."


async def test_the_request_vllms_load_generator_sends_is_served(gateway, smollm2_worker):
    """`vllm bench serve --backend openai-chat`'s payload (vllm/benchmarks/lib/endpoint_request_func.py)."""
    payload = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Tell me about the sea."}]}],
        "max_completion_tokens": 12,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "temperature": 0.0,
    }
    headers = {"Authorization": f"Bearer {API_KEY}", "x-request-id": "bench-0"}
    async with httpx.AsyncClient(
        base_url=gateway.url, headers=headers, timeout=300
    ) as http:  # a bound for failure only
        reply = await http.post("/v1/chat/completions", json=payload)
    assert reply.status_code == 200, reply.text
    frames = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: {")]
    assert frames[-1]["usage"]["completion_tokens"] == 12


async def test_responses_take_tool_results_logprobs_and_a_json_format(oai, caller, smollm2_worker):
    first = await oai.responses.create(
        model="caller", input="Weather in SF?", tools=[{**WEATHER_TOOL["function"], "type": "function"}]
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    follow_up = await oai.responses.create(
        model="smollm2", max_output_tokens=16, tools=[{**WEATHER_TOOL["function"], "type": "function"}],
        input=[
            {"role": "user", "content": "Weather in SF?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "Foggy, 15 degrees."},
        ],
        include=["message.output_text.logprobs"], top_logprobs=2,
    )  # fmt: skip
    text_part = follow_up.output[0].content[0]
    assert text_part.text and len(text_part.logprobs) == follow_up.usage.output_tokens
    shaped = await oai.responses.create(
        model="smollm2", input="Give me a person with a name and an age.", max_output_tokens=64, temperature=0,
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}},
    )  # fmt: skip
    assert set(json.loads(shaped.output_text)) == {"name", "age"}
    assert shaped.text.format.type == "json_schema" and shaped.temperature == 0


async def test_on_a_vllm_worker_a_forced_call_a_json_answer_logprobs_and_a_completion(oai, vllm_worker):
    forced = await oai.chat.completions.create(
        model="smollm2-vllm", messages=ask("What is the weather in Paris?"), tools=[WEATHER_TOOL],
        tool_choice="required", max_tokens=64, temperature=0,
    )  # fmt: skip
    call = forced.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments)["location"], str)
    person = await oai.chat.completions.create(
        model="smollm2-vllm", messages=ask("Give me a person with a name and an age."), max_tokens=64,
        temperature=0, logprobs=True, top_logprobs=2,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
    )  # fmt: skip
    answer = json.loads(person.choices[0].message.content)
    assert set(answer) == {"name", "age"} and isinstance(answer["age"], int)
    entries = person.choices[0].logprobs.content
    assert len(entries) == person.usage.completion_tokens and all(len(e.top_logprobs) == 2 for e in entries)
    completion = await oai.completions.create(
        model="smollm2-vllm", prompt="The capital of France is", max_tokens=4, temperature=0,
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    assert completion.usage.completion_tokens == 4 and completion.choices[0].text

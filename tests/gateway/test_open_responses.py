"""The Open Responses compliance templates (openresponses/openresponses, src/lib/compliance-tests.ts), sent
as that harness sends them, to a real gateway in front of real workers, and checked against the spec with
checks of our own (tests/gateway/open_responses.py): the text templates on SmolLM2, tool calling on an
echo worker scripted to call the template's tool (SmolLM2 does not call tools on its own), image input on
the tiny vision model (its answer is noise, as a random model's is: the template checks the shape)."""

import json

import httpx
import pytest

from tests.gateway.conftest import API_KEY
from tests.gateway.open_responses import event_problems, parse_stream, response_problems

GET_WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
        "required": ["location"],
    },
}
WEATHER_CALL = '<tool_call>{"name": "get_weather", "arguments": {"location": "San Francisco, CA"}}</tool_call>'


ALICE_GREETING = "Hello Alice! Nice to meet you. How can I help you today?"


def user(text):
    return {"type": "message", "role": "user", "content": text}


TEXT_TEMPLATES = {
    "basic-response": {"input": [user("Say hello in exactly 3 words.")]},
    "system-prompt": {
        "input": [
            {"type": "message", "role": "system", "content": "You are a pirate. Always respond in pirate speak."},
            user("Say hello."),
        ]
    },
    "multi-turn": {
        "input": [
            user("My name is Alice."),
            {
                "type": "message",
                "role": "assistant",
                "content": "Hello Alice! Nice to meet you. How can I help you today?",
            },
            user("What is my name?"),
        ]
    },
}


@pytest.fixture(scope="module")
def weather_worker(start_worker):
    """An echo worker whose answer is the template's tool call, in the Hermes format its template is prompted in."""
    return start_worker("echo", "weather-echo", engine="echo", engine_args={"answer": WEATHER_CALL})


async def _create(gateway, model: str, body: dict, stream: bool) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(
        base_url=gateway.url, headers=headers, timeout=300
    ) as http:  # a bound for failure only
        return await http.post("/v1/responses", content=json.dumps({"model": model, **body, "stream": stream}))


def _complete_response(reply: httpx.Response) -> dict:
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json"), reply.text
    response = reply.json()
    assert response_problems(response) == []
    assert response["output"], "the response has no output items"
    return response


def _streamed_response(reply: httpx.Response) -> tuple[dict, list[dict]]:
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream"), reply.text
    events, framing = parse_stream(reply.text)
    assert framing == []
    assert [problem for event in events for problem in event_problems(event)] == []
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    response = events[-1]["response"]
    assert response_problems(response) == [] and response["output"]
    return response, events


# The templates leave sampling to the server, whose Responses default is temperature 1.0, at which SmolLM2 now
# and then rambles on to its 1,024-token limit (an `incomplete` response, and minutes on a loaded machine):
# the tests pin it to greedy, so that each answer is the same every run.
GREEDY = {"temperature": 0}


@pytest.mark.parametrize("template", sorted(TEXT_TEMPLATES))
async def test_a_text_template_passes_on_smollm2(gateway, smollm2_worker, template):
    body = {**TEXT_TEMPLATES[template], **GREEDY}
    response = _complete_response(await _create(gateway, "smollm2", body, stream=False))
    assert response["status"] == "completed"
    [message] = response["output"]
    assert message["type"] == "message" and message["content"][0]["text"]


async def test_streaming_response_passes_on_smollm2(gateway, smollm2_worker):
    body = {"input": [user("Count from 1 to 5.")], **GREEDY}
    response, events = _streamed_response(await _create(gateway, "smollm2", body, stream=True))
    assert response["status"] == "completed"
    deltas = "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")
    assert deltas == response["output"][0]["content"][0]["text"]  # every delta, once, in order


async def test_tool_calling_passes(gateway, weather_worker):
    body = {"input": [user("What's the weather like in San Francisco?")], "tools": [GET_WEATHER]}
    response = _complete_response(await _create(gateway, "weather-echo", body, stream=False))
    [call] = [item for item in response["output"] if item["type"] == "function_call"]
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"location": "San Francisco, CA"})
    assert call["call_id"].startswith("call_") and response["tools"][0]["strict"] is None  # echoed, null filled in


async def test_tool_calling_streaming_passes(gateway, weather_worker):
    body = {"input": [user("What's the weather like in San Francisco?")], "tools": [GET_WEATHER]}
    response, events = _streamed_response(await _create(gateway, "weather-echo", body, stream=True))
    kinds = [event["type"] for event in events]
    added = [e for e in events if e["type"] == "response.output_item.added" and e["item"]["type"] == "function_call"]
    done = [e for e in events if e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"]
    assert added and done and "response.function_call_arguments.done" in kinds
    pieces = [event["delta"] for event in events if event["type"] == "response.function_call_arguments.delta"]
    assert len(pieces) > 1  # the arguments arrive in pieces, as the model writes them
    assert "".join(pieces) == done[0]["item"]["arguments"] == response["output"][-1]["arguments"]
    assert json.loads(done[0]["item"]["arguments"]) == {"location": "San Francisco, CA"}


async def test_image_input_passes_on_the_tiny_vision_model(gateway, vision_worker):
    body = {
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What do you see in this image? Answer in one sentence."},
                    {"type": "input_image", "image_url": HEART_PNG},
                ],
            }
        ],
        "max_output_tokens": 16,  # the tiny model's answer is noise: it would ramble to its context's end
    }
    response = _complete_response(await _create(gateway, "tiny-vision", body, stream=False))
    assert response["status"] in ("completed", "incomplete")  # noise stops where it stops
    assert response["usage"]["input_tokens"] > 16  # the image took its place in the prompt


HEART_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAABmklEQVR42tyWAaTyUBzFew/eG4AHz+MBSAHKBiJR"
    "GFKwIgQQJKLUIioBIhCAiCAAEizAQIAECaASqFFJq84nudjnaqvuPnxzgP9xfrq5938csPn7PwHTKSoViCIEAYEAMhmoKsU2mUCWEQqB5xEMIp"
    "/HaGQG2G6RSuH9HQ7H34rFrtPbdz4jl6PbwmEsl3QA1mt4vcRKk8dz9eg6IpF7tt9fzGY0gCgafFRFo5Blc5vLhf3eCOj1yNhM5GRMVK0aATxP"
    "Zoz09YXjkQDmczJgquGQAPp9WwCNBgG027YACgUC6HRsAZRKBDAY2AJoNv/ZnwzA6WScznG3p4UAymXGAEkyXrTFAh8fLAGqagQAyGaZpYsi7b"
    "HTNPz8MEj//LxuFPo+UBS8vb0KaLXubrRa7aX0RMLCykwmn0z3+XA4WACcTpCkh9MFAZpmuVXo+mO/w+/HZvNgbblcUCxaSo/Hyck80Yu6XXDc"
    "vfVZr79cvMZjuN2U9O9vKAqjZrfbIZ0mV4TUi9Xqz6jddNy//7+e3n8Fhf/Llo2kxi8AQyGRoDkmAhAAAAAASUVORK5CYII="
)

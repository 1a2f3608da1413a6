"""Hostile parameters get a clear 400 naming the field as the client sent it, quickly, and enqueue nothing.
Bodies are sent as raw JSON text, since some of them (Infinity, NaN) are what no JSON library writes."""

import json

import httpx
import pytest
import redis

from tests.gateway.conftest import API_KEY

ASK = '"model": "echo", "messages": [{"role": "user", "content": "hi"}]'
TEN_THOUSAND_STOPS = json.dumps(["s"] * 10_000)
TEN_THOUSAND_MESSAGES = json.dumps([{"role": "user", "content": "hi"}] * 10_000)

CHAT_CASES = [
    (f'{{{ASK}, "n": true}}', "n"),
    (f'{{{ASK}, "stream": "yes"}}', "stream"),
    (f'{{{ASK}, "temperature": "0.5"}}', "temperature"),
    (f'{{{ASK}, "temperature": Infinity}}', "temperature"),
    (f'{{{ASK}, "temperature": 2.5}}', "temperature"),
    (f'{{{ASK}, "top_p": 0}}', "top_p"),
    (f'{{{ASK}, "max_runtime_s": Infinity}}', "max_runtime_s"),
    (f'{{{ASK}, "deadline_s": NaN}}', "deadline_s"),
    (f'{{{ASK}, "seed": 1e40}}', "seed"),
    (f'{{{ASK}, "seed": 18446744073709551616}}', "seed"),
    (f'{{{ASK}, "stop": {TEN_THOUSAND_STOPS}}}', "stop"),
    (f'{{{ASK}, "stop": ["a", ""]}}', "stop.1"),
    (f'{{{ASK}, "deadline_s": 1e12}}', "deadline_s"),
    (f'{{{ASK}, "max_tokens": 1000000000}}', "max_tokens"),
    (f'{{{ASK}, "max_tokens": 5000000}}', "max_tokens"),  # under the bound, over the echo model's context
    (f'{{{ASK}, "max_tokens": 0}}', "max_tokens"),
    (f'{{{ASK}, "max_completion_tokens": 0}}', "max_completion_tokens"),
    (f'{{{ASK}, "n": 1000}}', "n"),
    (f'{{{ASK}, "priority": 12}}', "priority"),
    (f'{{{ASK}, "metadata": {{"nested": [1, NaN]}}}}', "metadata.nested.1"),
    (f'{{"model": "echo", "messages": {TEN_THOUSAND_MESSAGES}}}', "messages"),
    (f'{{{ASK}, "user": "{"u" * 300}"}}', "user"),
    ('{"model": "echo", "messages": [{"role": "user", "content": "\\ud800"}]}', "messages.0.content"),
    (f'{{{ASK}, "stop": ["ok", "\\udc00"]}}', "stop.1"),
]

RESPONSES_CASES = [
    ('{"model": "echo", "input": "hi", "max_output_tokens": 0}', "max_output_tokens"),
    ('{"model": "echo", "input": "hi", "temperature": -Infinity}', "temperature"),
    ('{"model": "echo", "input": "hi", "background": "true"}', "background"),
    ('{"model": "echo", "input": "hi", "seed": 9223372036854775808}', "seed"),
    ('{"model": "echo", "input": "\\ud800"}', "input"),
]


@pytest.fixture(scope="module")
def metas(redis_url):
    """How many jobs were ever submitted (each has a meta), read as an outside observer."""
    observer = redis.Redis.from_url(redis_url)
    return lambda: sum(1 for _ in observer.scan_iter(match="inferq:job:*", count=1000))


def _post(gateway, path: str, body: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    return httpx.post(f"{gateway.url}{path}", content=body, headers=headers, timeout=120)  # a bound for failure only


@pytest.mark.parametrize(("body", "param"), CHAT_CASES, ids=[param for _, param in CHAT_CASES])
def test_a_hostile_chat_parameter_is_a_400_naming_it_and_enqueues_nothing(gateway, metas, body, param):
    before = metas()
    reply = _post(gateway, "/v1/chat/completions", body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param and reply.json()["error"]["type"] == "invalid_request_error"
    assert metas() == before


@pytest.mark.parametrize(("body", "param"), RESPONSES_CASES, ids=[param for _, param in RESPONSES_CASES])
def test_a_hostile_responses_parameter_is_a_400_naming_it_and_enqueues_nothing(gateway, metas, body, param):
    before = metas()
    reply = _post(gateway, "/v1/responses", body)
    assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text
    assert metas() == before


def test_chat_of_a_scoring_model_and_scores_of_a_chat_model_are_refused_at_the_gateway(gateway, metas):
    before = metas()
    chat = _post(
        gateway, "/v1/chat/completions", '{"model": "echo-rm", "messages": [{"role": "user", "content": "x"}]}'
    )
    scores = _post(gateway, "/v1/score", '{"model": "echo", "messages": ["score me"]}')
    assert (chat.status_code, chat.json()["error"]["param"]) == (400, "model")
    assert (scores.status_code, scores.json()["error"]["param"]) == (400, "model")
    assert "scoring model" in chat.json()["error"]["message"] and "generates text" in scores.json()["error"]["message"]
    assert metas() == before


def test_a_method_a_route_does_not_take_is_a_405_that_says_so(gateway):
    reply = httpx.get(f"{gateway.url}/v1/batches/batch_x/cancel", headers={"Authorization": f"Bearer {API_KEY}"},
                      timeout=120)  # fmt: skip
    assert reply.status_code == 405 and reply.json()["error"]["code"] == "method_not_allowed"
